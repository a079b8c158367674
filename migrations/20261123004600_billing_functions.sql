/*
 * Billing functions: what billing-webhook calls, as service_role only.
 *
 * billing-webhook verifies a delivery's signature, reads the provider's
 * payload into one provider-neutral event (crates/billing/src/event.rs) and
 * calls public.apply_billing_event with it: one PostgREST request, so one
 * transaction, which records the event and applies it. The pieces are
 * functions of their own (record_billing_event, upsert_subscription,
 * upsert_order) so trusted server code can use them directly too.
 *
 * The public ones are SECURITY INVOKER (service_role has the table grants
 * and bypasses RLS) except apply_billing_event (see there); no other role
 * may execute any of them. Credits go through
 * public.grant_credits, which is the only writer of balances.
 */

/*
 * Function: public.record_billing_event(provider, event_id, type, occurred_at)
 *
 * Records an event once and returns its row, locked until the transaction
 * ends. A second delivery, even a concurrent one, waits on the first (the
 * unique index, then the row lock) and then sees what it did: processed_at
 * set means a duplicate; null means not applied yet (or failed), so it is
 * this delivery's turn.
 */
create or replace function public.record_billing_event(
  p_provider public.billing_provider,
  p_event_id text,
  p_type text,
  p_occurred_at timestamptz
)
returns public.billing_events
language plpgsql
volatile
set search_path = ''
as $$
declare
  event public.billing_events;
begin
  insert into public.billing_events (provider, event_id, type, occurred_at)
  values (p_provider, p_event_id, p_type, p_occurred_at)
  on conflict (provider, event_id) do nothing
  returning * into event;

  if event.id is null then
    select * into event
    from public.billing_events recorded
    where recorded.provider = p_provider and recorded.event_id = p_event_id
    for update;
    if event.processed_at is null then
      update public.billing_events recorded
      set attempts = recorded.attempts + 1
      where recorded.id = event.id
      returning * into event;
    end if;
  end if;
  return event;
end;
$$;

comment on function public.record_billing_event(public.billing_provider, text, text, timestamptz) is 'Records a provider event once (unique per provider and event id) and returns its row, locked. service_role only.';

/*
 * Function: kit.billing_account(provider, account_id, customer_id, subscription_id)
 *
 * The account an event is for: the one it names (which must exist), else
 * the one its customer is linked to, else the one its stored subscription
 * belongs to. Raises a plain sentence (stored as the event's error and
 * shown to the provider) when none is known yet.
 */
create or replace function kit.billing_account(
  p_provider public.billing_provider,
  p_account_id text,
  p_customer_id text,
  p_subscription_id text
)
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  found_ids uuid[];
  account uuid;
begin
  if p_account_id is not null then
    if p_account_id !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
      raise exception 'the account id % is not a uuid', p_account_id;
    end if;
    if not exists (select 1 from public.accounts a where a.id = p_account_id::uuid) then
      raise exception 'unknown account %', p_account_id;
    end if;
    return p_account_id::uuid;
  end if;

  if p_customer_id is not null then
    select array_agg(distinct customer.account_id) into found_ids
    from public.billing_customers customer
    where customer.provider = p_provider and customer.customer_id = p_customer_id;
    if cardinality(found_ids) = 1 then
      return found_ids[1];
    elsif cardinality(found_ids) > 1 then
      raise exception '% customer % is linked to several accounts; the event must name one', p_provider, p_customer_id;
    end if;
  end if;

  if p_subscription_id is not null then
    select subscription.account_id into account
    from public.subscriptions subscription
    where subscription.id = p_subscription_id;
    if account is not null then
      return account;
    end if;
  end if;

  raise exception 'no account is known for % customer %: pass the account id at checkout', p_provider, coalesce(p_customer_id, '(none)');
end;
$$;

comment on function kit.billing_account(public.billing_provider, text, text, text) is 'The account a billing event is for: named, or through its customer, or its stored subscription; raises when none is known.';

/*
 * Function: kit.upsert_billing_customer(account_id, provider, customer)
 *
 * Links the customer ({customer_id, email}) to the account and returns the
 * link's id; null when the event names no customer.
 */
create or replace function kit.upsert_billing_customer(
  p_account_id uuid,
  p_provider public.billing_provider,
  p_customer jsonb
)
returns bigint
language plpgsql
volatile
set search_path = ''
as $$
declare
  link bigint;
begin
  if p_customer is null or jsonb_typeof(p_customer) <> 'object' or p_customer->>'customer_id' is null then
    return null;
  end if;
  insert into public.billing_customers (account_id, provider, customer_id, email)
  values (p_account_id, p_provider, p_customer->>'customer_id', p_customer->>'email')
  on conflict (account_id, provider, customer_id)
    do update set email = coalesce(excluded.email, public.billing_customers.email)
  returning id into link;
  return link;
end;
$$;

comment on function kit.upsert_billing_customer(uuid, public.billing_provider, jsonb) is 'Links a provider customer to an account; returns the link id (null without a customer).';

/*
 * Function: public.upsert_subscription(account_id, billing_customer_id, provider, occurred_at, subscription)
 *
 * Writes the subscription as the event reports it, and its items: those
 * listed are inserted or updated, the rest deleted. Returns 'stale' and
 * changes nothing when the stored subscription was last changed by a newer
 * event; raises when the id belongs to another account.
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
    (p_subscription->>'status')::public.subscription_status,
    coalesce((p_subscription->>'active')::boolean, p_subscription->>'status' in ('active', 'trialing')),
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
    if stored.last_event_at > p_occurred_at then
      return 'stale';
    end if;
    update public.subscriptions s set
      billing_customer_id = coalesce(p_billing_customer_id, s.billing_customer_id),
      status = (p_subscription->>'status')::public.subscription_status,
      active = coalesce((p_subscription->>'active')::boolean, p_subscription->>'status' in ('active', 'trialing')),
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

comment on function public.upsert_subscription(uuid, bigint, public.billing_provider, timestamptz, jsonb) is 'Writes a subscription and its items as an event reports them (items not listed are deleted); stale when a newer event was applied. service_role only.';

/*
 * Function: public.upsert_order(account_id, billing_customer_id, provider, occurred_at, order)
 *
 * Writes a one-off order and its items as the event reports them. Stale
 * (nothing changes) when a newer event was applied, or when the event would
 * take a succeeded or failed order back to pending.
 */
create or replace function public.upsert_order(
  p_account_id uuid,
  p_billing_customer_id bigint,
  p_provider public.billing_provider,
  p_occurred_at timestamptz,
  p_order jsonb
)
returns public.billing_event_outcome
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_id text := p_order->>'id';
  new_status public.payment_status := (p_order->>'status')::public.payment_status;
  stored public.orders;
begin
  if v_id is null or new_status is null or jsonb_typeof(p_order->'items') is distinct from 'array' then
    raise exception 'the order has no id, status or items';
  end if;

  insert into public.orders (
    id, account_id, billing_customer_id, status, billing_provider, total_amount, currency, last_event_at
  )
  values (
    v_id, p_account_id, p_billing_customer_id, new_status, p_provider,
    (p_order->>'total_amount')::numeric, p_order->>'currency', p_occurred_at
  )
  on conflict (id) do nothing
  returning * into stored;

  if stored.id is null then
    select * into stored from public.orders o where o.id = v_id for update;
    if stored.account_id <> p_account_id or stored.billing_provider <> p_provider then
      raise exception 'order % belongs to another account', v_id;
    end if;
    if stored.last_event_at > p_occurred_at or (stored.status <> 'pending' and new_status = 'pending') then
      return 'stale';
    end if;
    update public.orders o set
      billing_customer_id = coalesce(p_billing_customer_id, o.billing_customer_id),
      status = new_status,
      total_amount = coalesce((p_order->>'total_amount')::numeric, o.total_amount),
      currency = coalesce(p_order->>'currency', o.currency),
      last_event_at = p_occurred_at
    where o.id = v_id;
  end if;

  delete from public.order_items item
  where item.order_id = v_id
    and item.variant_id not in (
      select listed->>'variant_id' from jsonb_array_elements(p_order->'items') listed
    );

  insert into public.order_items (order_id, product_id, variant_id, quantity, price_amount)
  select v_id, listed.product_id, listed.variant_id, coalesce(listed.quantity, 1), listed.price_amount
  from jsonb_to_recordset(p_order->'items') as listed(
    product_id text, variant_id text, quantity integer, price_amount numeric
  )
  on conflict (order_id, variant_id) do update set
    product_id = excluded.product_id,
    quantity = excluded.quantity,
    price_amount = excluded.price_amount;

  return 'applied';
end;
$$;

comment on function public.upsert_order(uuid, bigint, public.billing_provider, timestamptz, jsonb) is 'Writes a one-off order and its items as an event reports them; stale when a newer event was applied or it would go back to pending. service_role only.';

/*
 * Function: kit.grant_billing_credits(provider, account_id, items, grant_on, reference)
 *
 * Sums what billing_credit_prices says the paid items ([{variant_id,
 * quantity}]) are worth on grant_on ('purchase' or 'renewal') and grants it
 * to the account's primary owner (for a personal account, its user) once
 * per '<provider>:<reference>'. Returns the credits granted now (0 on a
 * repeat or when nothing is worth credits).
 */
create or replace function kit.grant_billing_credits(
  p_provider public.billing_provider,
  p_account_id uuid,
  p_items jsonb,
  p_grant_on text,
  p_reference text
)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  total bigint;
  owner uuid;
  granted jsonb;
begin
  select coalesce(sum(price.credits::bigint * greatest(coalesce(paid.quantity, 1), 0)), 0)
  into total
  from jsonb_to_recordset(coalesce(p_items, '[]'::jsonb)) as paid(variant_id text, quantity integer)
  join public.billing_credit_prices price
    on price.provider = p_provider
   and price.price_id = paid.variant_id
   and price.grant_on = p_grant_on;

  if total = 0 then
    return 0;
  end if;

  select account.primary_owner_user_id into owner
  from public.accounts account where account.id = p_account_id;

  granted := public.grant_credits(owner, total::integer, p_grant_on, p_provider::text || ':' || p_reference);
  return case when (granted->>'applied')::boolean then total::integer else 0 end;
end;
$$;

comment on function kit.grant_billing_credits(public.billing_provider, uuid, jsonb, text, text) is 'Grants the credits paid items are worth to the account''s owner, once per provider and reference.';

/*
 * Function: public.apply_billing_event(p_event jsonb)
 *
 * What billing-webhook calls for every verified delivery. p_event is the
 * provider-neutral event (crates/billing/src/event.rs):
 *
 *   {provider, event_id, type, occurred_at, account_id?, customer?: {customer_id, email},
 *    change: {kind: subscription | order | payment | customer | ignored | invalid, ...}}
 *
 * The event is recorded once; a duplicate changes nothing. The change is
 * applied in a subtransaction: on any error it is undone and the event
 * kept as 'failed' with the error and processed_at null, so the provider's
 * redelivery tries again. The answer's error is the reason when it is one
 * of ours (an unknown customer, say); other database errors are only
 * named by SQLSTATE there and kept whole in billing_events. Returns {"outcome": applied | stale | ignored |
 * duplicate | failed, "error", "credits_granted"}.
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
  v_outcome public.billing_event_outcome;
  credits integer := 0;
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
      'error', null, 'credits_granted', 0
    );
  end if;

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
        -- Credits go with the order becoming paid, not with every event
        -- that says it is: a later one (other items, a new owner) must not
        -- try to grant again.
        was_paid := exists (
          select 1 from public.orders o
          where o.id = change->'order'->>'id' and o.status = 'succeeded'
        );
        v_outcome := public.upsert_order(account, customer_link, provider, occurred_at, change->'order');
        if v_outcome = 'applied' and not was_paid and change->'order'->>'status' = 'succeeded' then
          credits := kit.grant_billing_credits(
            provider, account, change->'order'->'items', 'purchase', change->'order'->>'id'
          );
        end if;

      when 'payment' then
        account := kit.billing_account(
          provider, p_event->>'account_id', p_event->'customer'->>'customer_id',
          change->'payment'->>'subscription_id'
        );
        perform kit.upsert_billing_customer(account, provider, p_event->'customer');
        if jsonb_typeof(change->'payment'->'items') = 'array' then
          credits := kit.grant_billing_credits(
            provider, account, change->'payment'->'items', 'renewal', change->'payment'->>'reference'
          );
        elsif exists (select 1 from public.subscriptions s where s.id = change->'payment'->>'subscription_id') then
          -- The payment does not list what was paid for: the subscription's items.
          credits := kit.grant_billing_credits(
            provider, account,
            (select coalesce(jsonb_agg(jsonb_build_object('variant_id', item.variant_id, 'quantity', item.quantity)), '[]'::jsonb)
             from public.subscription_items item
             where item.subscription_id = change->'payment'->>'subscription_id'),
            'renewal', change->'payment'->>'reference'
          );
        else
          raise exception 'subscription % is not stored yet', change->'payment'->>'subscription_id';
        end if;
        v_outcome := 'applied';

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
      'credits_granted', 0
    );
  end;

  update public.billing_events recorded
  set processed_at = now(), outcome = v_outcome, error = null
  where recorded.id = event.id;
  return jsonb_build_object('outcome', v_outcome, 'error', null, 'credits_granted', credits);
end;
$$;

comment on function public.apply_billing_event(jsonb) is 'Records a provider event once and applies it in the same transaction; failures are kept for a redelivery. What billing-webhook calls. service_role only.';

-- Only trusted server code (service_role) runs any of these.
revoke all on function public.record_billing_event(public.billing_provider, text, text, timestamptz) from public, anon, authenticated, service_role;
revoke all on function public.upsert_subscription(uuid, bigint, public.billing_provider, timestamptz, jsonb) from public, anon, authenticated, service_role;
revoke all on function public.upsert_order(uuid, bigint, public.billing_provider, timestamptz, jsonb) from public, anon, authenticated, service_role;
revoke all on function public.apply_billing_event(jsonb) from public, anon, authenticated, service_role;
revoke all on function kit.billing_account(public.billing_provider, text, text, text) from public, anon, authenticated, service_role;
revoke all on function kit.upsert_billing_customer(uuid, public.billing_provider, jsonb) from public, anon, authenticated, service_role;
revoke all on function kit.grant_billing_credits(public.billing_provider, uuid, jsonb, text, text) from public, anon, authenticated, service_role;

grant execute on function public.record_billing_event(public.billing_provider, text, text, timestamptz) to service_role;
grant execute on function public.upsert_subscription(uuid, bigint, public.billing_provider, timestamptz, jsonb) to service_role;
grant execute on function public.upsert_order(uuid, bigint, public.billing_provider, timestamptz, jsonb) to service_role;
grant execute on function public.apply_billing_event(jsonb) to service_role;
