/*
 * The credit policy: credits follow money actually paid, once, in both
 * directions. The README's "Credit policy" table says the same in words;
 * kit.apply_credit_policy (what a paid order or bill grants) and
 * kit.settle_billing_payment (what its refunds and disputes take back) are
 * the only places that apply it.
 *
 * billing-webhook's parsers turn each provider's words into the facts
 * used here (crates/billing/src/event.rs): what a bill charged
 * (`amount`, after discounts), and for each line whether it is a full
 * period of a recurring price, a proration of a plan change, or a
 * one-time price; and each refund, dispute or chargeback by its id, kind,
 * amount and whether it is pending, effective or void.
 *
 * Also here: apply_billing_event with the new changes (reversal,
 * payment_link), and a same-second tie-break for subscriptions.
 */

/*
 * Function: kit.lock_billing_payment_keys(provider, keys, reference)
 *
 * Locks the key rows of a payment, creating those not known yet, in key
 * order (two events naming the same keys never deadlock), and points them
 * at p_reference when given and not already pointing elsewhere (the first
 * payment to claim a key keeps it). Returns the reference the keys belong
 * to: p_reference, or the first one already recorded for any key, or null.
 *
 * Every event touching a payment's credits (the payment itself, a link, a
 * refund or dispute) takes these locks first, so a refund and the purchase
 * it refunds, arriving together, run one after the other and the second
 * sees the first.
 */
create or replace function kit.lock_billing_payment_keys(
  p_provider public.billing_provider,
  p_keys text[],
  p_reference text
)
returns text
language plpgsql
volatile
set search_path = ''
as $$
declare
  one_key text;
  points_at text;
  found_reference text;
begin
  for one_key in
    select distinct btrim(listed) from unnest(p_keys) listed
    where nullif(btrim(listed), '') is not null
    order by 1
  loop
    insert into public.billing_payment_keys as stored (provider, key, reference)
    values (p_provider, one_key, p_reference)
    on conflict (provider, key) do update
      set reference = coalesce(stored.reference, excluded.reference)
    returning stored.reference into points_at;
    found_reference := coalesce(found_reference, points_at);
  end loop;
  return coalesce(p_reference, found_reference);
end;
$$;

comment on function kit.lock_billing_payment_keys(public.billing_provider, text[], text) is 'Locks (creating) a payment''s key rows in order and points them at the payment; returns the payment they belong to, if known.';

/*
 * Function: kit.settle_billing_payment(provider, reference)
 *
 * Brings the credits a payment has taken back in line with its refunds
 * and disputes as they are now, and returns the change (negative: taken
 * back now; positive: restored). The rule (README, "Credit policy"):
 *
 *   refunded = the per-refund amounts that are effective (when any refund
 *              of it failed or was canceled, only those; otherwise the larger
 *              of their sum and the provider's running total), less
 *              reversed refunds;
 *   disputed = effective disputes and chargebacks, less their reversals;
 *   taken    = min(amount, refunded + disputed);
 *   kept     = floor(credits granted x (amount - taken) / amount), so a
 *              partial refund takes back its share rounded up and a full
 *              one takes back everything.
 *
 * The difference from what was already taken back is one new ledger row
 * (billing_reversal or billing_restore, reference
 * '<provider>:<reference>:<n>'), whatever the balance: a take-back of
 * credits already spent leaves a debt. Computed from the state, not added
 * up per event, so any number of events about the same refunds (Stripe
 * sends several per refund) take back exactly once.
 */
create or replace function kit.settle_billing_payment(
  p_provider public.billing_provider,
  p_reference text
)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  payment public.billing_payments;
  refunded bigint;
  disputed bigint;
  taken bigint;
  target integer;
  delta integer;
begin
  select * into payment
  from public.billing_payments p
  where p.provider = p_provider and p.reference = p_reference
  for update;
  if not found then
    return 0;
  end if;

  select
    greatest(
      case when count(*) filter (where r.kind = 'refund' and not r.cumulative and r.status = 'void') > 0
        then coalesce(sum(r.amount) filter (where r.kind = 'refund' and not r.cumulative and r.status = 'effective'), 0)
        else greatest(
          coalesce(sum(r.amount) filter (where r.kind = 'refund' and not r.cumulative and r.status = 'effective'), 0),
          coalesce(sum(r.amount) filter (where r.kind = 'refund' and r.cumulative and r.status = 'effective'), 0))
      end
      - coalesce(sum(r.amount) filter (where r.kind = 'refund_reversal' and r.status = 'effective'), 0),
      0),
    greatest(
      coalesce(sum(r.amount) filter (where r.kind = 'dispute' and r.status = 'effective'), 0)
      - coalesce(sum(r.amount) filter (where r.kind = 'dispute_reversal' and r.status = 'effective'), 0),
      0)
  into refunded, disputed
  from public.billing_reversals r
  where r.provider = p_provider and r.reference = p_reference;

  taken := least(payment.amount, refunded + disputed);
  target := case
    when payment.amount = 0 then 0
    else payment.credits_granted
         - ((payment.credits_granted::bigint * (payment.amount - taken)) / payment.amount)::integer
  end;
  delta := target - payment.credits_taken_back;

  if delta <> 0 and payment.user_id is not null then
    perform kit.post_credit_transaction(
      payment.user_id,
      -delta,
      case when delta > 0 then 'billing_reversal' else 'billing_restore' end,
      p_provider::text || ':' || p_reference || ':' || (payment.reversal_entries + 1)
    );
  end if;

  update public.billing_payments p set
    amount_refunded = least(refunded, p.amount),
    amount_disputed = least(disputed, p.amount),
    credits_taken_back = target,
    reversal_entries = p.reversal_entries
      + case when delta <> 0 and payment.user_id is not null then 1 else 0 end
  where p.provider = p_provider and p.reference = p_reference;

  update public.orders o set
    amount_refunded = least(refunded, payment.amount),
    amount_disputed = least(disputed, payment.amount)
  where o.id = p_reference and o.billing_provider = p_provider;

  return -delta;
end;
$$;

comment on function kit.settle_billing_payment(public.billing_provider, text) is 'Takes back (or restores) a payment''s credits to match its refunds and disputes as they are now; returns the change.';

/*
 * Function: kit.link_billing_payment(provider, reference, keys)
 *
 * Says which keys belong to a payment (recorded or not yet), attaches the
 * refunds and disputes that named any of them (or the reference itself)
 * before, and settles the payment when it is recorded. Returns the credit
 * change, as kit.settle_billing_payment.
 */
create or replace function kit.link_billing_payment(
  p_provider public.billing_provider,
  p_reference text,
  p_keys text[]
)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  all_keys text[] := array_append(coalesce(p_keys, '{}'), p_reference);
begin
  perform kit.lock_billing_payment_keys(p_provider, all_keys, p_reference);
  update public.billing_reversals r
  set reference = p_reference
  where r.provider = p_provider and r.reference is null and r.payment_keys && all_keys;
  return kit.settle_billing_payment(p_provider, p_reference);
end;
$$;

comment on function kit.link_billing_payment(public.billing_provider, text, text[]) is 'Attaches keys, and the refunds and disputes naming them, to a payment; settles it when recorded.';

/*
 * Function: kit.apply_credit_policy(provider, account_id, paid_at, reference,
 *   subscription_id, amount, currency, billing_reason, lines, payment_keys)
 *
 * What one paid order or subscription bill grants, once per
 * (provider, reference), to the account's primary owner:
 *
 *   - nothing when it charged nothing (amount <= 0): a trial's first bill,
 *     a 100 %-off coupon;
 *   - for each `period` line (a full period of a recurring price, the first
 *     or a renewal) whose own amount is not 0 or less: the price's
 *     `renewal` credits x quantity;
 *   - for each `one_time` line likewise: its `purchase` credits x quantity;
 *   - for `proration` lines (a plan change's partial charges and credits):
 *     nothing; the new plan's credits come with its next period.
 *
 * Lines are [{variant_id, quantity, amount, kind}]; billing_credit_prices
 * says what each price is worth. The payment is then recorded
 * (billing_payments) with the credits the ledger holds for it, linked to
 * its keys, and settled against refunds or disputes that arrived before
 * it. A second call for the same reference grants nothing. Returns the
 * credits granted now and those taken back at once (by refunds or disputes
 * that were waiting for it).
 */
create or replace function kit.apply_credit_policy(
  p_provider public.billing_provider,
  p_account_id uuid,
  p_paid_at timestamptz,
  p_reference text,
  p_subscription_id text,
  p_amount bigint,
  p_currency text,
  p_billing_reason text,
  p_lines jsonb,
  p_payment_keys text[],
  out granted integer,
  out taken_back integer
)
language plpgsql
volatile
set search_path = ''
as $$
declare
  owner uuid;
  ledger_reference text := p_provider::text || ':' || p_reference;
  worth record;
  answer jsonb;
begin
  granted := 0;
  taken_back := 0;
  -- First, so a refund arriving at the same time waits for this payment.
  perform kit.lock_billing_payment_keys(
    p_provider, array_append(coalesce(p_payment_keys, '{}'), p_reference), p_reference
  );
  if exists (
    select 1 from public.billing_payments p
    where p.provider = p_provider and p.reference = p_reference
  ) then
    return;
  end if;

  select account.primary_owner_user_id into owner
  from public.accounts account where account.id = p_account_id;

  if coalesce(p_amount, 0) > 0 then
    for worth in
      select price.grant_on, sum(price.credits::bigint * greatest(coalesce(line.quantity, 1), 0)) as credits
      from jsonb_to_recordset(coalesce(p_lines, '[]'::jsonb))
        as line(variant_id text, quantity integer, amount bigint, kind text)
      join public.billing_credit_prices price
        on price.provider = p_provider
       and price.price_id = line.variant_id
       and price.grant_on = case line.kind when 'period' then 'renewal' when 'one_time' then 'purchase' end
      where line.amount is null or line.amount > 0
      group by price.grant_on
      order by price.grant_on
    loop
      if worth.credits > 0 then
        answer := public.grant_credits(owner, worth.credits::integer, worth.grant_on, ledger_reference);
        if (answer->>'applied')::boolean then
          granted := granted + worth.credits::integer;
        end if;
      end if;
    end loop;
  end if;

  insert into public.billing_payments (
    provider, reference, account_id, user_id, subscription_id, amount, currency,
    billing_reason, credits_granted, paid_at
  )
  values (
    p_provider, p_reference, p_account_id, owner, p_subscription_id, greatest(coalesce(p_amount, 0), 0),
    p_currency, left(nullif(btrim(p_billing_reason), ''), 64),
    -- What the ledger holds for it: also right for a payment granted
    -- before payments were recorded.
    (select coalesce(sum(t.amount), 0)::integer from public.credit_transactions t
     where t.reason in ('purchase', 'renewal') and t.reference = ledger_reference),
    p_paid_at
  );

  taken_back := -kit.link_billing_payment(p_provider, p_reference, p_payment_keys);
end;
$$;

comment on function kit.apply_credit_policy(public.billing_provider, uuid, timestamptz, text, text, bigint, text, text, jsonb, text[]) is 'The credit policy for one paid order or bill: renewal credits for full periods, purchase credits for one-time prices, nothing for prorations or a bill of 0; once per reference. Records the payment and settles earlier refunds.';

/*
 * Function: kit.upsert_billing_reversal(provider, occurred_at, reversal, reference)
 *
 * Writes a refund, dispute or chargeback ({id, payment_keys, kind, amount,
 * currency, status, cumulative, provider_status}) as the event reports it.
 * Stale when a newer event was applied to it; at the same second, a state
 * never goes back (pending, then effective, then void). A running total
 * takes the larger amount at the same second.
 */
create or replace function kit.upsert_billing_reversal(
  p_provider public.billing_provider,
  p_occurred_at timestamptz,
  p_reversal jsonb,
  p_reference text
)
returns public.billing_event_outcome
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_id text := nullif(btrim(p_reversal->>'id'), '');
  v_status text := p_reversal->>'status';
  v_keys text[] := array(
    select distinct btrim(k) from jsonb_array_elements_text(coalesce(p_reversal->'payment_keys', '[]'::jsonb)) k
    where nullif(btrim(k), '') is not null
  );
  rank_of constant jsonb := '{"pending": 0, "effective": 1, "void": 2}';
  stored public.billing_reversals;
begin
  if v_id is null or cardinality(v_keys) = 0 then
    raise exception 'the refund or dispute has no id or names no payment';
  end if;

  insert into public.billing_reversals (
    provider, id, kind, status, amount, currency, cumulative, payment_keys, reference,
    provider_status, last_event_at
  )
  values (
    p_provider, v_id, p_reversal->>'kind', v_status, (p_reversal->>'amount')::bigint,
    p_reversal->>'currency', coalesce((p_reversal->>'cumulative')::boolean, false), v_keys, p_reference,
    left(nullif(btrim(p_reversal->>'provider_status'), ''), 64), p_occurred_at
  )
  on conflict (provider, id) do nothing
  returning * into stored;
  if stored.id is not null then
    return 'applied';
  end if;

  select * into stored from public.billing_reversals r
  where r.provider = p_provider and r.id = v_id
  for update;
  if stored.last_event_at > p_occurred_at
     or (stored.last_event_at = p_occurred_at
         and (rank_of->>v_status)::integer < (rank_of->>stored.status)::integer) then
    return 'stale';
  end if;
  update public.billing_reversals r set
    status = v_status,
    amount = case
      when r.cumulative and r.last_event_at = p_occurred_at then greatest(r.amount, (p_reversal->>'amount')::bigint)
      else (p_reversal->>'amount')::bigint
    end,
    currency = coalesce(p_reversal->>'currency', r.currency),
    payment_keys = array(select distinct k from unnest(r.payment_keys || v_keys) k order by 1),
    reference = coalesce(r.reference, p_reference),
    provider_status = coalesce(left(nullif(btrim(p_reversal->>'provider_status'), ''), 64), r.provider_status),
    last_event_at = p_occurred_at
  where r.provider = p_provider and r.id = v_id;
  return 'applied';
end;
$$;

comment on function kit.upsert_billing_reversal(public.billing_provider, timestamptz, jsonb, text) is 'Writes a refund, dispute or chargeback in its latest state; stale when older than the last applied.';

/*
 * public.upsert_subscription, as before, with a tie-break for events of the
 * same second (Stripe's `created` has one-second resolution, so an
 * `updated` to active and a late `created` in `incomplete` can share it):
 * at the same second a subscription never goes back, in the order
 * incomplete < active, trialing, past_due, unpaid, paused < canceled,
 * incomplete_expired, expired; within a rank the later arrival wins.
 */
create or replace function public.upsert_subscription(
  p_account_id uuid,
  p_billing_customer_id bigint,
  p_provider public.billing_provider,
  p_occurred_at timestamptz,
  p_subscription jsonb
)
returns public.billing_event_outcome
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_id text := p_subscription->>'id';
  new_status public.subscription_status := (p_subscription->>'status')::public.subscription_status;
  rank_of constant jsonb := '{"incomplete": 0, "canceled": 2, "incomplete_expired": 2, "expired": 2}';
  stored public.subscriptions;
begin
  if v_id is null or jsonb_typeof(p_subscription->'items') is distinct from 'array' then
    raise exception 'the subscription has no id or no items';
  end if;

  -- Insert first, so two deliveries racing for a new subscription meet on
  -- its row lock; then lock whichever row is there.
  insert into public.subscriptions (
    id, account_id, billing_customer_id, status, active, billing_provider,
    cancel_at_period_end, currency, period_starts_at, period_ends_at,
    trial_starts_at, trial_ends_at, last_event_at
  )
  values (
    v_id, p_account_id, p_billing_customer_id,
    new_status,
    coalesce((p_subscription->>'active')::boolean, new_status in ('active', 'trialing')),
    p_provider,
    coalesce((p_subscription->>'cancel_at_period_end')::boolean, false),
    p_subscription->>'currency',
    (p_subscription->>'period_starts_at')::timestamptz,
    (p_subscription->>'period_ends_at')::timestamptz,
    (p_subscription->>'trial_starts_at')::timestamptz,
    (p_subscription->>'trial_ends_at')::timestamptz,
    p_occurred_at
  )
  on conflict (id) do nothing
  returning * into stored;

  if stored.id is null then
    select * into stored from public.subscriptions s where s.id = v_id for update;
    if stored.account_id <> p_account_id or stored.billing_provider <> p_provider then
      raise exception 'subscription % belongs to another account', v_id;
    end if;
    if stored.last_event_at > p_occurred_at
       or (stored.last_event_at = p_occurred_at
           and coalesce((rank_of->>new_status::text)::integer, 1)
               < coalesce((rank_of->>stored.status::text)::integer, 1)) then
      return 'stale';
    end if;
    update public.subscriptions s set
      billing_customer_id = coalesce(p_billing_customer_id, s.billing_customer_id),
      status = new_status,
      active = coalesce((p_subscription->>'active')::boolean, new_status in ('active', 'trialing')),
      cancel_at_period_end = coalesce((p_subscription->>'cancel_at_period_end')::boolean, false),
      currency = coalesce(p_subscription->>'currency', s.currency),
      period_starts_at = (p_subscription->>'period_starts_at')::timestamptz,
      period_ends_at = (p_subscription->>'period_ends_at')::timestamptz,
      trial_starts_at = (p_subscription->>'trial_starts_at')::timestamptz,
      trial_ends_at = (p_subscription->>'trial_ends_at')::timestamptz,
      last_event_at = p_occurred_at
    where s.id = v_id;
  end if;

  delete from public.subscription_items item
  where item.subscription_id = v_id
    and item.variant_id not in (
      select listed->>'variant_id' from jsonb_array_elements(p_subscription->'items') listed
    );

  insert into public.subscription_items (
    subscription_id, product_id, variant_id, type, quantity, interval, interval_count, price_amount
  )
  select
    v_id,
    listed.product_id,
    listed.variant_id,
    listed.type::public.subscription_item_type,
    coalesce(listed.quantity, 1),
    listed.interval,
    listed.interval_count,
    listed.price_amount
  from jsonb_to_recordset(p_subscription->'items') as listed(
    product_id text, variant_id text, type text, quantity integer,
    interval text, interval_count integer, price_amount numeric
  )
  on conflict (subscription_id, variant_id) do update set
    product_id = excluded.product_id,
    type = excluded.type,
    quantity = excluded.quantity,
    interval = excluded.interval,
    interval_count = excluded.interval_count,
    price_amount = excluded.price_amount;

  return 'applied';
end;
$$;

comment on function public.upsert_subscription(uuid, bigint, public.billing_provider, timestamptz, jsonb) is 'Writes a subscription and its items as an event reports them (items not listed are deleted); stale when a newer event was applied, or one of the same second with a later status. service_role only.';

/*
 * Function: public.apply_billing_event(p_event jsonb)
 *
 * What billing-webhook calls for every verified delivery. p_event is the
 * provider-neutral event (crates/billing/src/event.rs):
 *
 *   {provider, event_id, type, occurred_at, api_version?, notification_id?,
 *    account_id?, customer?: {customer_id, email},
 *    change: {kind: subscription | order | payment | reversal | payment_link
 *                   | customer | ignored | invalid, ...}}
 *
 * The event is recorded once; a duplicate changes nothing. The change is
 * applied in a subtransaction: on any error it is undone and the event
 * kept as 'failed' with the error and processed_at null, so the provider's
 * redelivery tries again. The answer's error is the reason when it is one
 * of ours (an unknown customer, say); other database errors are only
 * named by SQLSTATE there and kept whole in billing_events. Returns
 * {"outcome": applied | stale | ignored | duplicate | failed, "error",
 * "credits_granted", "credits_taken_back"} (taken back is negative when
 * credits were restored).
 *
 * Credits are granted and taken back only through kit.apply_credit_policy
 * and kit.settle_billing_payment. A refund or dispute whose payment is not
 * recorded yet is kept (applied, nothing taken) and settled when the
 * payment arrives.
 *
 * Raises http_422 (nothing written) for input without a provider, event
 * id, type, time or change.
 *
 * SECURITY DEFINER only to reach its helpers in the private kit schema,
 * which no API role may use; search_path is pinned, every name qualified,
 * and only service_role may execute it.
 */
create or replace function public.apply_billing_event(p_event jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  provider public.billing_provider;
  occurred_at timestamptz;
  event_id text := nullif(btrim(p_event->>'event_id'), '');
  event_type text := nullif(btrim(p_event->>'type'), '');
  change jsonb := p_event->'change';
  event public.billing_events;
  account uuid;
  customer_link bigint;
  was_paid boolean;
  payment jsonb;
  lines jsonb;
  one_time jsonb;
  reference text;
  v_outcome public.billing_event_outcome;
  granted integer := 0;
  taken_back integer := 0;
begin
  begin
    provider := (p_event->>'provider')::public.billing_provider;
    occurred_at := (p_event->>'occurred_at')::timestamptz;
  exception when others then
    raise exception 'http_422: The event''s provider or occurred_at is not valid';
  end;
  if provider is null or occurred_at is null or event_id is null or event_type is null
     or jsonb_typeof(change) is distinct from 'object' then
    raise exception 'http_422: An event needs a provider, event_id, type, occurred_at and change';
  end if;

  event := public.record_billing_event(provider, event_id, event_type, occurred_at);
  if event.processed_at is not null then
    return jsonb_build_object(
      'outcome', 'duplicate', 'recorded_outcome', event.outcome,
      'error', null, 'credits_granted', 0, 'credits_taken_back', 0
    );
  end if;
  update public.billing_events recorded set
    api_version = coalesce(left(nullif(btrim(p_event->>'api_version'), ''), 64), recorded.api_version),
    notification_id = coalesce(left(nullif(btrim(p_event->>'notification_id'), ''), 255), recorded.notification_id)
  where recorded.id = event.id;

  begin
    case change->>'kind'
      when 'ignored' then
        v_outcome := 'ignored';

      when 'invalid' then
        raise exception '%', coalesce(change->>'error', 'the event could not be read');

      when 'customer' then
        account := kit.billing_account(provider, p_event->>'account_id', p_event->'customer'->>'customer_id', null);
        perform kit.upsert_billing_customer(account, provider, p_event->'customer');
        v_outcome := 'applied';

      when 'subscription' then
        account := kit.billing_account(
          provider, p_event->>'account_id', p_event->'customer'->>'customer_id',
          change->'subscription'->>'id'
        );
        customer_link := kit.upsert_billing_customer(account, provider, p_event->'customer');
        v_outcome := public.upsert_subscription(account, customer_link, provider, occurred_at, change->'subscription');

      when 'order' then
        account := kit.billing_account(provider, p_event->>'account_id', p_event->'customer'->>'customer_id', null);
        customer_link := kit.upsert_billing_customer(account, provider, p_event->'customer');
        reference := change->'order'->>'id';
        -- Credits go with the order becoming paid, not with every event
        -- that says it is: a later one (other items, a new owner) must not
        -- try to grant again.
        was_paid := exists (
          select 1 from public.orders o where o.id = reference and o.status = 'succeeded'
        );
        v_outcome := public.upsert_order(account, customer_link, provider, occurred_at, change->'order');
        if v_outcome = 'applied' and not was_paid and change->'order'->>'status' = 'succeeded' then
          select policy.granted, policy.taken_back into granted, taken_back
          from kit.apply_credit_policy(
            provider, account, occurred_at, reference, null,
            (change->'order'->>'total_amount')::bigint, change->'order'->>'currency', null,
            (select coalesce(jsonb_agg(item || '{"amount": null, "kind": "one_time"}'::jsonb), '[]'::jsonb)
             from jsonb_array_elements(change->'order'->'items') item),
            array(select jsonb_array_elements_text(coalesce(change->'order'->'payment_keys', '[]'::jsonb)))
          ) policy;
        elsif jsonb_array_length(coalesce(change->'order'->'payment_keys', '[]'::jsonb)) > 0 then
          -- Not (newly) paid, but the ids a later refund names are known now.
          taken_back := -kit.link_billing_payment(
            provider, reference,
            array(select jsonb_array_elements_text(change->'order'->'payment_keys'))
          );
        end if;

      when 'payment' then
        payment := change->'payment';
        reference := payment->>'reference';
        account := kit.billing_account(
          provider, p_event->>'account_id', p_event->'customer'->>'customer_id',
          payment->>'subscription_id'
        );
        customer_link := kit.upsert_billing_customer(account, provider, p_event->'customer');
        if jsonb_typeof(payment->'lines') = 'array' then
          lines := payment->'lines';
        elsif exists (select 1 from public.subscriptions s where s.id = payment->>'subscription_id') then
          -- The bill does not list what was paid for: the subscription's
          -- items, each a full period.
          select coalesce(jsonb_agg(jsonb_build_object(
                   'variant_id', item.variant_id, 'quantity', item.quantity, 'amount', null, 'kind', 'period')),
                 '[]'::jsonb)
          into lines
          from public.subscription_items item
          where item.subscription_id = payment->>'subscription_id';
        else
          raise exception 'subscription % is not stored yet', payment->>'subscription_id';
        end if;
        -- One-time prices bought with the bill are an order too.
        select jsonb_agg(jsonb_build_object(
                 'product_id', line->>'product_id', 'variant_id', line->>'variant_id',
                 'quantity', coalesce((line->>'quantity')::integer, 1), 'price_amount', null))
        into one_time
        from jsonb_array_elements(lines) line
        where line->>'kind' = 'one_time';
        if one_time is not null and coalesce((payment->>'amount')::bigint, 0) > 0 then
          perform public.upsert_order(account, customer_link, provider, occurred_at, jsonb_build_object(
            'id', reference, 'status', 'succeeded',
            'total_amount', (select sum(greatest((line->>'amount')::bigint, 0))
                             from jsonb_array_elements(lines) line where line->>'kind' = 'one_time'),
            'currency', payment->>'currency', 'items', one_time));
        end if;
        select policy.granted, policy.taken_back into granted, taken_back
        from kit.apply_credit_policy(
          provider, account, occurred_at, reference, payment->>'subscription_id',
          (payment->>'amount')::bigint, payment->>'currency', payment->>'billing_reason', lines,
          array(select jsonb_array_elements_text(coalesce(payment->'payment_keys', '[]'::jsonb)))
        ) policy;
        v_outcome := 'applied';

      when 'payment_link' then
        taken_back := -kit.link_billing_payment(
          provider, change->'link'->>'reference',
          array(select jsonb_array_elements_text(coalesce(change->'link'->'payment_keys', '[]'::jsonb)))
        );
        v_outcome := 'applied';

      when 'reversal' then
        reference := kit.lock_billing_payment_keys(
          provider,
          array(select jsonb_array_elements_text(coalesce(change->'reversal'->'payment_keys', '[]'::jsonb))),
          null
        );
        v_outcome := kit.upsert_billing_reversal(provider, occurred_at, change->'reversal', reference);
        if v_outcome = 'applied' and reference is not null then
          taken_back := -kit.settle_billing_payment(provider, reference);
        end if;

      else
        raise exception 'unknown change kind %', coalesce(change->>'kind', '(none)');
    end case;
  exception when others then
    -- The ledger keeps the database's own words for operators; the answer
    -- (shown to the provider) carries only the sentences raised here.
    update public.billing_events recorded
    set outcome = 'failed', error = sqlerrm
    where recorded.id = event.id;
    return jsonb_build_object(
      'outcome', 'failed',
      'error', case when sqlstate = 'P0001' then sqlerrm
               else 'the database refused the event (' || sqlstate || '); see billing_events' end,
      'credits_granted', 0, 'credits_taken_back', 0
    );
  end;

  update public.billing_events recorded
  set processed_at = now(), outcome = v_outcome, error = null
  where recorded.id = event.id;
  return jsonb_build_object(
    'outcome', v_outcome, 'error', null, 'credits_granted', granted, 'credits_taken_back', taken_back
  );
end;
$$;

comment on function public.apply_billing_event(jsonb) is 'Records a provider event once and applies it in the same transaction, credits through the credit policy; failures are kept for a redelivery. What billing-webhook calls. service_role only.';

-- Replaced by kit.apply_credit_policy.
drop function if exists kit.grant_billing_credits(public.billing_provider, uuid, jsonb, text, text);

revoke all on function kit.lock_billing_payment_keys(public.billing_provider, text[], text) from public, anon, authenticated, service_role;
revoke all on function kit.settle_billing_payment(public.billing_provider, text) from public, anon, authenticated, service_role;
revoke all on function kit.link_billing_payment(public.billing_provider, text, text[]) from public, anon, authenticated, service_role;
revoke all on function kit.apply_credit_policy(public.billing_provider, uuid, timestamptz, text, text, bigint, text, text, jsonb, text[]) from public, anon, authenticated, service_role;
revoke all on function kit.upsert_billing_reversal(public.billing_provider, timestamptz, jsonb, text) from public, anon, authenticated, service_role;
revoke all on function public.upsert_subscription(uuid, bigint, public.billing_provider, timestamptz, jsonb) from public, anon, authenticated, service_role;
revoke all on function public.apply_billing_event(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.upsert_subscription(uuid, bigint, public.billing_provider, timestamptz, jsonb) to service_role;
grant execute on function public.apply_billing_event(jsonb) to service_role;
