-- The credit policy (README, "Credit policy"; kit.apply_credit_policy and
-- kit.settle_billing_payment), row by row, through apply_billing_event as
-- billing-webhook calls it: first period, renewal, plan change with
-- prorations, a plan change that starts a new period, a trial, a free
-- invoice, one-time purchases alone and alongside a subscription; refunds
-- full, partial, repeated, failed and reported as running totals; disputes
-- opened, won and lost; chargebacks and their reversal; a refund before
-- the purchase it refunds and before the link that names it; the debt a
-- refund of spent credits leaves, and reserve_email refusing sends until it
-- is paid off; stale reversals; the same-second tie-break for
-- subscriptions. After every step the balance equals the ledger.
begin;
create extension if not exists pgtap;
\ir _helpers.psql
\ir _billing.psql

do $$
begin
  perform tests.create_user('owner');
  perform tests.create_user('solo');
  perform tests.create_team_account('owner', 'team');
  -- solo's debt is shown refusing a plain mail (the default is templates only).
  perform tests.allow_custom_content('solo');

  delete from public.billing_credit_prices;
  insert into public.billing_credit_prices (provider, price_id, credits, grant_on)
  values
    ('stripe', 'price_pro', 100, 'renewal'),
    ('stripe', 'price_plus', 300, 'renewal'),
    ('stripe', 'price_pack', 50, 'purchase'),
    ('paddle', 'pri_pack', 50, 'purchase'),
    ('lemon-squeezy', '111', 100, 'renewal'),
    ('lemon-squeezy', '222', 40, 'purchase');
end
$$;

-- The owner's balance, and whether it equals their ledger.
create function tests.owner_balance()
returns table (credits integer, matches_ledger boolean)
language sql
stable
as $$
  select tests.credits('owner'), tests.credits('owner') = tests.ledger_sum('owner');
$$;

-- A Stripe event for the team.
create function tests.team_event(event_id text, type text, occurred_at text, change jsonb)
returns jsonb
language sql
stable
as $$
  select tests.event('stripe', team_event.event_id, team_event.type, team_event.occurred_at,
                     tests.account_id('team')::text, tests.customer('cus_team'), team_event.change);
$$;

select plan(75);

select tests.apply(tests.team_event('evt_sub', 'customer.subscription.created', '2025-09-10T12:00:00Z',
  tests.subscription_change('sub_s', 'active', jsonb_build_array(tests.subscription_item('price_pro', 1)))));

/*
 * Subscription bills
 */
select is(
  tests.apply(tests.team_event('evt_first', 'invoice.paid', '2025-09-10T12:00:01Z',
    tests.payment_change('sub_s', 'in_first', jsonb_build_array(tests.line('price_pro', 1, 2900, 'period')),
      2900, billing_reason => 'subscription_create'))),
  tests.answer('applied', 100),
  'first period paid: the plan''s renewal credits');
select results_eq($$ select * from tests.payment_row('stripe', 'in_first') $$,
  $$ values (2900::bigint, 100, 0, 0::bigint, 0::bigint) $$,
  'the payment is recorded with what it charged and granted');
select is(
  (select billing_reason from public.billing_payments where reference = 'in_first'), 'subscription_create',
  'with the provider''s reason kept');

select is(
  tests.apply(tests.team_event('evt_renew', 'invoice.paid', '2025-10-10T12:00:01Z',
    tests.payment_change('sub_s', 'in_renew', jsonb_build_array(tests.line('price_pro', 2, 5800, 'period')),
      5800, payment_keys => '{pi_renew,ch_renew}', billing_reason => 'subscription_cycle'))),
  tests.answer('applied', 200),
  'renewal: the renewal credits again, times the quantity');

select is(
  tests.apply(tests.team_event('evt_change', 'invoice.paid', '2025-10-20T12:00:00Z',
    tests.payment_change('sub_s', 'in_change', jsonb_build_array(
      tests.line('price_pro', 2, -1900, 'proration'),
      tests.line('price_plus', 2, 6500, 'proration')), 4600, billing_reason => 'subscription_update'))),
  tests.answer('applied', 0),
  'plan change with prorations (credit for unused time, charge for the new plan): nothing');
select results_eq($$ select * from tests.payment_row('stripe', 'in_change') $$,
  $$ values (4600::bigint, 0, 0, 0::bigint, 0::bigint) $$,
  'the prorated bill is recorded, granting nothing');

select is(
  tests.apply(tests.team_event('evt_reset', 'invoice.paid', '2025-10-25T12:00:00Z',
    tests.payment_change('sub_s', 'in_reset', jsonb_build_array(
      tests.line('price_pro', 1, -1000, 'proration'),
      tests.line('price_plus', 1, 9900, 'period')), 8900, billing_reason => 'subscription_update'))),
  tests.answer('applied', 300),
  'a plan change that starts a new period (a full period line): the new plan''s credits, the proration nothing');

select is(
  tests.apply(tests.team_event('evt_trial', 'invoice.paid', '2025-09-10T12:00:02Z',
    tests.payment_change('sub_s', 'in_trial', jsonb_build_array(tests.line('price_pro', 1, 0, 'period')), 0))),
  tests.answer('applied', 0),
  'trial: a first bill of 0 grants nothing');
select is(
  tests.apply(tests.team_event('evt_free', 'invoice.paid', '2025-09-10T12:00:03Z',
    tests.payment_change('sub_s', 'in_free', jsonb_build_array(tests.line('price_pro', 1, 2900, 'period')), 0))),
  tests.answer('applied', 0),
  'free invoice (a 100 % coupon: the line is priced, the bill charged 0): nothing');
select is(
  tests.apply(tests.team_event('evt_zero_line', 'invoice.paid', '2025-09-10T12:00:04Z',
    tests.payment_change('sub_s', 'in_zero_line', jsonb_build_array(
      tests.line('price_pro', 1, 0, 'period'), tests.line('price_pack', 1, 500, 'one_time')), 500))),
  tests.answer('applied', 50),
  'a line of 0 on a paid bill grants nothing; the paid one-time line beside it does');

select is(
  tests.apply(tests.team_event('evt_mixed', 'invoice.paid', '2025-11-10T12:00:01Z',
    tests.payment_change('sub_s', 'in_mixed', jsonb_build_array(
      tests.line('price_pro', 1, 2900, 'period'),
      tests.line('price_pack', 2, 1000, 'one_time')), 3900, billing_reason => 'subscription_create'))),
  tests.answer('applied', 200),
  'one-time purchase alongside a subscription: renewal credits for the period, purchase credits for the pack');
select results_eq(
  $$ select reason, amount from public.credit_transactions where reference = 'stripe:in_mixed' order by reason $$,
  $$ values ('purchase', 100), ('renewal', 100) $$,
  'one purchase row and one renewal row, both referenced by the bill');
select results_eq(
  $$ select o.status::text, o.total_amount, o.account_id = tests.account_id('team'), i.variant_id, i.quantity
     from public.orders o join public.order_items i on i.order_id = o.id where o.id = 'in_mixed' $$,
  $$ values ('succeeded', 1000::numeric, true, 'price_pack', 2) $$,
  'and the one-time part is kept as a paid order');
select is(
  tests.apply(tests.team_event('evt_mixed_again', 'invoice.payment_succeeded', '2025-11-10T12:00:02Z',
    tests.payment_change('sub_s', 'in_mixed', jsonb_build_array(
      tests.line('price_pro', 1, 2900, 'period'),
      tests.line('price_pack', 2, 1000, 'one_time')), 3900))),
  tests.answer('applied', 0),
  'another event for the same bill grants nothing more');
select results_eq($$ select * from tests.owner_balance() $$, $$ values (1150, true) $$,
  '300 + 100 + 200 + 300 + 50 + 200: the balance equals the ledger');

select tests.apply(tests.event('lemon-squeezy', 'ls_sub', 'subscription_created', '2025-09-10T12:00:00Z',
  tests.user_id('solo')::text, tests.customer('ls_solo'),
  tests.subscription_change('ls_sub_1', 'active', jsonb_build_array(tests.subscription_item('111', 1)))));
select is(
  tests.apply(tests.event('lemon-squeezy', 'ls_inv_updated', 'subscription_payment_success', '2025-09-20T12:00:00Z',
    null, tests.customer('ls_solo'), tests.payment_change('ls_sub_1', 'ls_inv_2', '[]', 1200))),
  tests.answer('applied', 0),
  'a Lemon Squeezy plan change''s bill (no lines: billing_reason updated) grants nothing');
select is(
  tests.apply(tests.event('lemon-squeezy', 'ls_inv_renewal', 'subscription_payment_success', '2025-10-10T12:00:00Z',
    null, tests.customer('ls_solo'), tests.payment_change('ls_sub_1', 'ls_inv_3', null, 1200))),
  tests.answer('applied', 100),
  'its renewal (lines null: the stored items, full periods) grants the plan''s credits');

/*
 * One-off orders
 */
select is(
  tests.apply(tests.team_event('evt_cs_pack', 'checkout.session.completed', '2025-09-11T12:00:00Z',
    tests.order_change('cs_pack', 'succeeded', jsonb_build_array(tests.order_item('price_pack', 1)), 1000,
      payment_keys => '{pi_pack}'))),
  tests.answer('applied', 50),
  'one-time purchase: the pack''s purchase credits');
select is(
  tests.apply(tests.team_event('evt_cs_free', 'checkout.session.completed', '2025-09-11T12:00:00Z',
    tests.order_change('cs_free', 'succeeded', jsonb_build_array(tests.order_item('price_pack', 4)), 0))),
  tests.answer('applied', 0),
  'an order that charged 0 (a 100 % coupon) grants nothing');
select is(
  tests.apply(tests.team_event('evt_cs_unknown_total', 'checkout.session.completed', '2025-09-11T12:00:00Z',
    tests.order_change('cs_no_total', 'succeeded', jsonb_build_array(tests.order_item('price_pack', 4)), null))),
  tests.answer('applied', 0),
  'nor does one whose payload does not say what it charged');

/*
 * Refunds
 */
select is(
  tests.apply(tests.team_event('evt_re_pack', 'refund.created', '2025-09-12T12:00:00Z',
    tests.reversal_change('re_pack', '{pi_pack,ch_pack}', 'refund', 1000, 'effective'))),
  tests.answer('applied', 0, 50),
  'a full refund takes back all the order''s credits');
select results_eq(
  $$ select amount, reason from public.credit_transactions where reference = 'stripe:cs_pack:1' $$,
  $$ values (-50, 'billing_reversal') $$,
  'as one billing_reversal row, numbered per payment');
select results_eq(
  $$ select * from tests.payment_row('stripe', 'cs_pack') $$,
  $$ values (1000::bigint, 50, 50, 1000::bigint, 0::bigint) $$,
  'the payment shows the refund and the credits taken back');
select results_eq(
  $$ select status::text, amount_refunded, amount_disputed from public.orders where id = 'cs_pack' $$,
  $$ values ('succeeded', 1000::bigint, 0::bigint) $$,
  'and so does the order');
select is(
  tests.apply(tests.team_event('evt_re_pack', 'refund.created', '2025-09-12T12:00:00Z',
    tests.reversal_change('re_pack', '{pi_pack,ch_pack}', 'refund', 1000, 'effective'))),
  tests.duplicate('applied'),
  'its redelivery is a duplicate');
select is(
  tests.apply(tests.team_event('evt_re_pack_updated', 'refund.updated', '2025-09-12T12:00:05Z',
    tests.reversal_change('re_pack', '{pi_pack,ch_pack}', 'refund', 1000, 'effective'))),
  tests.answer('applied', 0, 0),
  'another event about the same refund takes nothing more');
select is(
  tests.apply(tests.team_event('evt_charge_refunded', 'charge.refunded', '2025-09-12T12:00:01Z',
    tests.reversal_change('total:ch_pack', '{pi_pack,ch_pack}', 'refund', 1000, 'effective', true))),
  tests.answer('applied', 0, 0),
  'nor does the charge''s running total of the same refund');
select is(
  (select count(*)::int from public.credit_transactions where reference like 'stripe:cs_pack:%'), 1,
  'one take-back for the one refund, however it was reported');

select tests.apply(tests.team_event('evt_cs_three', 'checkout.session.completed', '2025-09-13T12:00:00Z',
  tests.order_change('cs_three', 'succeeded', jsonb_build_array(tests.order_item('price_pack', 3)), 1000,
    payment_keys => '{pi_three}')));
select is(
  tests.apply(tests.team_event('evt_re_3a', 'refund.created', '2025-09-14T12:00:00Z',
    tests.reversal_change('re_3a', '{pi_three}', 'refund', 333, 'effective'))),
  tests.answer('applied', 0, 50),
  'a partial refund takes back its share, rounded up: a third of 150 credits is 50');
select is(
  tests.apply(tests.team_event('evt_re_3b', 'refund.created', '2025-09-15T12:00:00Z',
    tests.reversal_change('re_3b', '{pi_three}', 'refund', 333, 'effective'))),
  tests.answer('applied', 0, 50),
  'a second third takes 50 more (kept: floor(150 x 334 / 1000) = 50)');
select is(
  tests.apply(tests.team_event('evt_re_3c', 'refund.created', '2025-09-16T12:00:00Z',
    tests.reversal_change('re_3c', '{pi_three}', 'refund', 334, 'effective'))),
  tests.answer('applied', 0, 50),
  'the last part takes the rest: three partial refunds take back exactly what was granted');
select results_eq(
  $$ select * from tests.payment_row('stripe', 'cs_three') $$,
  $$ values (1000::bigint, 150, 150, 1000::bigint, 0::bigint) $$,
  'the payment is fully refunded');
select is(
  tests.apply(tests.team_event('evt_re_3c_failed', 'refund.failed', '2025-09-17T12:00:00Z',
    tests.reversal_change('re_3c', '{pi_three}', 'refund', 334, 'void'))),
  tests.answer('applied', 0, -50),
  'a refund that fails returns what it took');
select results_eq(
  $$ select amount, reason from public.credit_transactions where reference = 'stripe:cs_three:4' $$,
  $$ values (50, 'billing_restore') $$,
  'as a billing_restore row');
select is(
  tests.apply(tests.team_event('evt_re_3c_late', 'refund.created', '2025-09-16T12:00:00Z',
    tests.reversal_change('re_3c', '{pi_three}', 'refund', 334, 'effective'))),
  tests.answer('stale'),
  'an older event about the failed refund is stale');
select is(
  tests.apply(tests.team_event('evt_charge_three', 'charge.refunded', '2025-09-16T12:00:01Z',
    tests.reversal_change('total:ch_three', '{pi_three,ch_three}', 'refund', 1000, 'effective', true))),
  tests.answer('applied', 0, 0),
  'a running total that still counts the failed refund does not take its share again');
select results_eq($$ select * from tests.payment_row('stripe', 'cs_three') $$,
  $$ values (1000::bigint, 150, 100, 666::bigint, 0::bigint) $$,
  'two thirds refunded, 100 credits taken back');

select tests.apply(tests.event('lemon-squeezy', 'ls_order_1', 'order_created', '2025-09-13T12:00:00Z',
  tests.user_id('solo')::text, tests.customer('ls_solo'),
  tests.order_change('ls_ord', 'succeeded', jsonb_build_array(tests.order_item('222', 1)), 2000)));
select is(
  tests.apply(tests.event('lemon-squeezy', 'ls_refund_1', 'order_refunded', '2025-09-14T12:00:00Z', null, null,
    tests.reversal_change('total:ls_ord', '{ls_ord}', 'refund', 500, 'effective', true))),
  tests.answer('applied', 0, 10),
  'a refund reported only as a running total: a quarter of 40 credits');
select is(
  tests.apply(tests.event('lemon-squeezy', 'ls_refund_2', 'order_refunded', '2025-09-15T12:00:00Z', null, null,
    tests.reversal_change('total:ls_ord', '{ls_ord}', 'refund', 2000, 'effective', true))),
  tests.answer('applied', 0, 30),
  'the total growing to the whole order takes the rest');

select is(
  tests.apply(tests.team_event('evt_re_renew', 'charge.refunded', '2025-10-11T12:00:00Z',
    tests.reversal_change('total:ch_renew', '{pi_renew,ch_renew}', 'refund', 2900, 'effective', true))),
  tests.answer('applied', 0, 100),
  'a subscription bill refunded by half takes back half its renewal credits');

/*
 * Disputes and chargebacks
 */
select tests.apply(tests.team_event('evt_cs_disputed', 'checkout.session.completed', '2025-09-13T12:00:00Z',
  tests.order_change('cs_disputed', 'succeeded', jsonb_build_array(tests.order_item('price_pack', 2)), 2000,
    payment_keys => '{pi_disputed}')));
select is(
  tests.apply(tests.team_event('evt_du_warning', 'charge.dispute.created', '2025-09-14T12:00:00Z',
    tests.reversal_change('du_1', '{pi_disputed,ch_disputed}', 'dispute', 2000, 'pending'))),
  tests.answer('applied', 0, 0),
  'an inquiry (a dispute warning) takes nothing yet');
select is(
  tests.apply(tests.team_event('evt_du_open', 'charge.dispute.updated', '2025-09-15T12:00:00Z',
    tests.reversal_change('du_1', '{pi_disputed,ch_disputed}', 'dispute', 2000, 'effective'))),
  tests.answer('applied', 0, 100),
  'a dispute opened takes back the credits of the disputed amount');
select results_eq($$ select amount_disputed, amount_refunded from public.orders where id = 'cs_disputed' $$,
  $$ values (2000::bigint, 0::bigint) $$, 'the order shows the dispute');
select is(
  tests.apply(tests.team_event('evt_du_won', 'charge.dispute.closed', '2025-09-30T12:00:00Z',
    tests.reversal_change('du_1', '{pi_disputed,ch_disputed}', 'dispute', 2000, 'void'))),
  tests.answer('applied', 0, -100),
  'a dispute won restores them');
select results_eq($$ select * from tests.payment_row('stripe', 'cs_disputed') $$,
  $$ values (2000::bigint, 100, 0, 0::bigint, 0::bigint) $$, 'nothing is held any more');

select tests.apply(tests.team_event('evt_cs_lost', 'checkout.session.completed', '2025-09-13T12:00:00Z',
  tests.order_change('cs_lost', 'succeeded', jsonb_build_array(tests.order_item('price_pack', 1)), 1000,
    payment_keys => '{pi_lost}')));
select is(
  tests.apply(tests.team_event('evt_du2_open', 'charge.dispute.created', '2025-09-14T12:00:00Z',
    tests.reversal_change('du_2', '{pi_lost}', 'dispute', 1000, 'effective'))),
  tests.answer('applied', 0, 50),
  'another dispute opened takes back its order''s credits');
select is(
  tests.apply(tests.team_event('evt_du2_lost', 'charge.dispute.closed', '2025-09-30T12:00:00Z',
    tests.reversal_change('du_2', '{pi_lost}', 'dispute', 1000, 'effective'))),
  tests.answer('applied', 0, 0),
  'a dispute lost keeps them taken');

select tests.apply(tests.event('paddle', 'paddle_txn_cb', 'transaction.completed', '2025-09-13T12:00:00Z',
  tests.account_id('team')::text, null,
  tests.order_change('txn_cb', 'succeeded', jsonb_build_array(tests.order_item('pri_pack', 1)), 1000)));
select is(
  tests.apply(tests.event('paddle', 'paddle_adj_cb', 'adjustment.created', '2025-09-14T12:00:00Z', null, null,
    tests.reversal_change('adj_cb', '{txn_cb}', 'dispute', 1000, 'effective'))),
  tests.answer('applied', 0, 50),
  'a chargeback takes back the credits');
select is(
  tests.apply(tests.event('paddle', 'paddle_adj_cbr', 'adjustment.created', '2025-09-20T12:00:00Z', null, null,
    tests.reversal_change('adj_cbr', '{txn_cb}', 'dispute_reversal', 1000, 'effective'))),
  tests.answer('applied', 0, -50),
  'its reversal (a chargeback decided for the merchant) restores them');

/*
 * A refund before the purchase, a refund before the link naming its payment
 */
select is(
  tests.apply(tests.team_event('evt_re_early', 'refund.created', '2025-09-20T12:00:00Z',
    tests.reversal_change('re_early', '{pi_early,ch_early}', 'refund', 1000, 'effective'))),
  tests.answer('applied', 0, 0),
  'a refund of a payment not recorded yet is kept, taking nothing');
select is(
  (select reference from public.billing_reversals where id = 're_early'), null,
  'it names no payment yet');
select is(
  tests.apply(tests.team_event('evt_cs_early', 'checkout.session.completed', '2025-09-19T12:00:00Z',
    tests.order_change('cs_early', 'succeeded', jsonb_build_array(tests.order_item('price_pack', 2)), 1000,
      payment_keys => '{pi_early}'))),
  tests.answer('applied', 100, 100),
  'the purchase arriving grants its credits and the waiting refund takes them back at once');
select results_eq(
  $$ select reason, amount from public.credit_transactions where reference like 'stripe:cs_early%' order by reason $$,
  $$ values ('billing_reversal', -100), ('purchase', 100) $$,
  'no free credits by ordering: one grant, one take-back');

select is(
  tests.apply(tests.team_event('evt_basil_paid', 'invoice.paid', '2025-12-10T12:00:01Z',
    tests.payment_change('sub_s', 'in_basil', jsonb_build_array(tests.line('price_pro', 1, 2900, 'period')), 2900))),
  tests.answer('applied', 100),
  'a bill that does not name its payment intent (Stripe since basil) grants as usual');
select is(
  tests.apply(tests.team_event('evt_re_basil', 'charge.refunded', '2025-12-11T12:00:00Z',
    tests.reversal_change('total:ch_basil', '{pi_basil,ch_basil}', 'refund', 2900, 'effective', true))),
  tests.answer('applied', 0, 0),
  'its refund, naming only the payment intent, waits');
select is(
  tests.apply(tests.team_event('evt_link_basil', 'invoice_payment.paid', '2025-12-10T12:00:02Z',
    tests.link_change('in_basil', '{pi_basil}'))),
  tests.answer('applied', 0, 100),
  'the link (invoice_payment.paid) attaches it, and the credits are taken back');
select results_eq($$ select * from tests.payment_row('stripe', 'in_basil') $$,
  $$ values (2900::bigint, 100, 100, 2900::bigint, 0::bigint) $$, 'the bill is refunded');

select is(
  tests.apply(tests.team_event('evt_re_nokeys', 'refund.created', '2025-12-11T12:00:00Z',
    tests.reversal_change('re_nokeys', '{}', 'refund', 100, 'effective'))),
  tests.failed('the refund or dispute has no id or names no payment'),
  'a refund naming no payment fails and is kept for a redelivery');

-- 1150, then: packs +50 +150 +100 +50 +50 +100, the basil bill +100;
-- taken back 50 (full refund) + 100 (two thirds) + 100 (half a renewal)
-- + 50 (dispute lost) + 100 (refund before purchase) + 100 (basil refund).
select results_eq($$ select * from tests.owner_balance() $$, $$ values (1250, true) $$,
  'after refunds and disputes the balance still equals the ledger');

/*
 * Debt: a refund of credits already spent
 */
select tests.apply(tests.event('lemon-squeezy', 'ls_order_debt', 'order_created', '2025-09-13T12:00:00Z',
  tests.user_id('solo')::text, tests.customer('ls_solo'),
  tests.order_change('ls_debt', 'succeeded', jsonb_build_array(tests.order_item('222', 10)), 1000)));
select tests.set_credits('solo', 50);
select is(
  tests.apply(tests.event('lemon-squeezy', 'ls_refund_debt', 'order_refunded', '2025-09-14T12:00:00Z', null, null,
    tests.reversal_change('total:ls_debt', '{ls_debt}', 'refund', 1000, 'effective', true))),
  tests.answer('applied', 0, 400),
  'a refund takes back all 400 credits, though only 50 are left');
select results_eq($$ select tests.credits('solo'), tests.ledger_sum('solo') $$, $$ values (-350, -350) $$,
  'the balance goes below 0: a debt, explained by the ledger');
select throws_ok(
  $$ select tests.reserve_email('solo', 'debt-1') $$,
  'P0001', 'http_402: Not enough credits: this email costs 1, you have -350',
  'reserve_email refuses every send while in debt');
select throws_ok(
  $$ update public.profiles set credits = credits - 1 where id = tests.user_id('solo') $$,
  '23514', 'a credit balance cannot go below 0',
  'nothing but a billing reversal deepens a debt');
select is(
  (public.grant_credits(tests.user_id('solo'), 351, 'manual_adjustment', 'forgive-debt')->>'credits')::int, 1,
  'a manual adjustment may add credits to a balance in debt');
select is(
  (tests.reserve_email('solo', 'debt-2')->>'credits_remaining')::int, 0,
  'once the balance covers the price, sends work again');

/*
 * Same-second ordering of subscription events
 */
select tests.apply(tests.team_event('evt_tie_updated', 'customer.subscription.updated', '2025-09-10T13:00:00Z',
  tests.subscription_change('sub_tie', 'active', jsonb_build_array(tests.subscription_item('price_pro', 1)))));
select is(
  tests.apply(tests.team_event('evt_tie_created', 'customer.subscription.created', '2025-09-10T13:00:00Z',
    tests.subscription_change('sub_tie', 'incomplete', jsonb_build_array(tests.subscription_item('price_pro', 1))))),
  tests.answer('stale'),
  'a late created (incomplete) in the same second as updated (active) is stale');
select is((select status::text from public.subscriptions where id = 'sub_tie'), 'active',
  'the subscription stays active');
select is(
  tests.apply(tests.team_event('evt_tie_past_due', 'customer.subscription.updated', '2025-09-10T13:00:00Z',
    tests.subscription_change('sub_tie', 'past_due', jsonb_build_array(tests.subscription_item('price_pro', 1))))),
  tests.answer('applied'),
  'within a rank the later arrival wins');
select is(
  tests.apply(tests.team_event('evt_tie_deleted', 'customer.subscription.deleted', '2025-09-10T13:00:00Z',
    tests.subscription_change('sub_tie', 'canceled', jsonb_build_array(tests.subscription_item('price_pro', 1))))),
  tests.answer('applied'),
  'an end in the same second is applied');
select is(
  tests.apply(tests.team_event('evt_tie_revived', 'customer.subscription.updated', '2025-09-10T13:00:00Z',
    tests.subscription_change('sub_tie', 'active', jsonb_build_array(tests.subscription_item('price_pro', 1))))),
  tests.answer('stale'),
  'and nothing of the same second takes it back');
select is(
  tests.apply(tests.team_event('evt_tie_next_second', 'customer.subscription.updated', '2025-09-10T13:00:01Z',
    tests.subscription_change('sub_tie', 'active', jsonb_build_array(tests.subscription_item('price_pro', 1))))),
  tests.answer('applied'),
  'a later second is applied whatever its status (Lemon Squeezy resumes cancelled subscriptions)');

/*
 * Reversals ordering
 */
select tests.apply(tests.team_event('evt_cs_ord', 'checkout.session.completed', '2025-09-13T12:00:00Z',
  tests.order_change('cs_ord', 'succeeded', jsonb_build_array(tests.order_item('price_pack', 1)), 1000,
    payment_keys => '{pi_ord}')));
select is(
  tests.apply(tests.team_event('evt_re_ord_done', 'refund.updated', '2025-09-14T12:00:00Z',
    tests.reversal_change('re_ord', '{pi_ord}', 'refund', 1000, 'effective'))),
  tests.answer('applied', 0, 50),
  'a refund''s later state arriving first applies');
select is(
  tests.apply(tests.team_event('evt_re_ord_pending', 'refund.created', '2025-09-14T12:00:00Z',
    tests.reversal_change('re_ord', '{pi_ord}', 'refund', 1000, 'pending'))),
  tests.answer('stale'),
  'its pending state of the same second arriving late is stale');
select results_eq($$ select * from tests.payment_row('stripe', 'cs_ord') $$,
  $$ values (1000::bigint, 50, 50, 1000::bigint, 0::bigint) $$, 'the refund stands');

select results_eq(
  $$ select count(*)::int from public.profiles p
     where p.credits <> (select coalesce(sum(t.amount), 0) from public.credit_transactions t where t.user_id = p.id) $$,
  $$ values (0) $$,
  'every balance equals its ledger');

select * from finish();
rollback;
