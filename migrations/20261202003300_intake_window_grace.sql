/*
 * Intake: a rate-limit window is not deleted while a request may still
 * count into it.
 *
 * public.intake_begin deleted a counter as soon as its window ended
 * (expires_at <= now()). now() is the transaction's start, so a request
 * whose transaction began just before a window ended could count after a
 * request of the next window had deleted the ended window's row: it found
 * no row, started the window again at one hit and was let through. Seen in
 * the e2e suite with the window forced to cross: 44 tickets from one address
 * against a limit of 20 per window over two windows (one extra per request
 * then in flight). Counters are now deleted ten minutes after their window
 * ended, far longer than any transaction of this function. Everything else
 * is as in 20261202002000_intake_limited_address_read_only.sql.
 */

create or replace function public.intake_begin(
  p_intake_key text,
  p_client_ip text,
  p_idempotency_key text default null,
  p_request_hash text default null,
  p_category text default null,
  p_priority public.ticket_priority default null
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  intake public.ticket_intakes;
  replay jsonb;
  retry_after integer;
  current_window record;
  ip_hits integer;
  account_tickets integer;
begin
  intake := kit.enabled_intake(p_intake_key);
  replay := kit.intake_replay(intake.account_id, p_idempotency_key, p_request_hash);

  if replay is null then
    select * into current_window from kit.intake_window(intake);

    delete from kit.intake_rate_counters expired
    where (expired.bucket, expired.window_start) in (
      select old.bucket, old.window_start
      from kit.intake_rate_counters old
      -- Ten minutes after the window's end, not at it: a transaction that
      -- began inside the window (its now() is its start) and counts after a
      -- later one deleted the row would start the window again at 1, and
      -- pass, once per request then in flight.
      where old.expires_at <= now() - interval '10 minutes'
      limit 100
      for update skip locked
    );

    -- Read first, without a lock: an address already over its limit stays
    -- limited whatever it adds, so its request is answered from this read
    -- and never queues on its counter row (a burst from one address would
    -- otherwise serialize on that row and hold every pool connection).
    select counter.hits
    into ip_hits
    from kit.intake_rate_counters counter
    where counter.bucket = kit.intake_ip_bucket(intake.account_id, p_client_ip)
      and counter.window_start = current_window.window_start;
    if coalesce(ip_hits, 0) <= intake.rate_limit_per_ip then
      ip_hits := kit.count_intake_hit(
        kit.intake_ip_bucket(intake.account_id, p_client_ip),
        current_window.window_start,
        current_window.window_end
      );
    end if;
    select counter.hits
    into account_tickets
    from kit.intake_rate_counters counter
    where counter.bucket = 'account:' || intake.account_id
      and counter.window_start = current_window.window_start;

    if ip_hits > intake.rate_limit_per_ip
       or coalesce(account_tickets, 0) >= intake.rate_limit_per_account then
      retry_after := kit.intake_retry_after(current_window.window_end);
    end if;
  end if;

  return jsonb_build_object(
    'account_id', intake.account_id,
    'allowed_origins', to_jsonb(intake.allowed_origins),
    'default_category', intake.default_category,
    'allowed_categories', to_jsonb(intake.allowed_categories),
    'default_priority', intake.default_priority,
    'allowed_priorities', to_jsonb(intake.allowed_priorities),
    'thank_you_url', intake.thank_you_url,
    'retry_after', retry_after,
    'replay', replay,
    'errors', kit.intake_field_errors(intake, p_category, p_priority)
  );
end;
$$;

comment on function public.intake_begin(text, text, text, text, text, public.ticket_priority) is 'Ticket intake, before the captcha: the intake''s settings, a replay of an earlier submission with the same idempotency key, retry_after when the IP or the account is rate limited, and field errors for a category or priority the intake does not accept. Counts the IP window only, up to one past its limit; an address already over it is answered from a read, without a lock. Deletes counters ten minutes after their window ended. service_role only.';

revoke all on function public.intake_begin(text, text, text, text, text, public.ticket_priority) from public, anon, authenticated, service_role;
grant execute on function public.intake_begin(text, text, text, text, text, public.ticket_priority) to service_role;
