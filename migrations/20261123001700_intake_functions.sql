/*
 * Intake functions: what the ticket-intake Worker calls, through PostgREST
 * with the service key, to turn an anonymous form post into a ticket.
 *
 * A submission takes two calls, because the captcha is verified in between
 * and a token can only be verified once:
 *
 *   1. public.intake_begin, before the captcha: is the key known and
 *      enabled, which settings apply (origins, categories, priorities,
 *      thank-you page), is this a retry of a submission already made, and
 *      is the client or the account over its rate limit;
 *   2. public.intake_submit, after the captcha passed: validate, and create
 *      the ticket, its first message and the submission record in one
 *      transaction, exactly once per idempotency key and captcha token.
 *
 * Errors the client should see are raised as 'http_<status>: <message>';
 * the Worker turns them into that status with that message (see
 * crates/db). Both functions are executable by service_role only.
 *
 * They are SECURITY DEFINER because they use kit (the rate counters and the
 * helpers below), which service_role may not touch; search_path is pinned
 * and every name is qualified.
 */

/*
 * Function: kit.enabled_intake(intake_key)
 *
 * The enabled intake with this key. An unknown key and a disabled intake
 * raise the same 404, so the form cannot tell which it met.
 */
create or replace function kit.enabled_intake(intake_key text)
returns public.ticket_intakes
language plpgsql
stable
set search_path = ''
as $$
declare
  found_intake public.ticket_intakes;
begin
  select *
  into found_intake
  from public.ticket_intakes intake
  where intake.intake_key = enabled_intake.intake_key
    and intake.enabled;

  if not found then
    raise exception 'http_404: Unknown or disabled intake key';
  end if;

  return found_intake;
end;
$$;

comment on function kit.enabled_intake(text) is 'The enabled ticket intake with this key; raises http_404 when there is none.';

revoke all on function kit.enabled_intake(text) from public, anon, authenticated, service_role;

/*
 * Function: kit.intake_replay(account_id, idempotency_key, request_hash)
 *
 * When the account's intake already created a ticket for this idempotency
 * key, that ticket as {"ticket_id", "reference"}; null when the key is new
 * or not given. The same key with a different request hash is a different
 * submission reusing a key, and raises http_422 rather than hand back a
 * ticket that does not match it. Hashes compare with IS DISTINCT FROM, so
 * two requests without a hash match.
 */
create or replace function kit.intake_replay(
  account_id uuid,
  idempotency_key text,
  request_hash text
)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  previous record;
begin
  if intake_replay.idempotency_key is null then
    return null;
  end if;

  select submission.request_hash, ticket.id as ticket_id, ticket.reference
  into previous
  from public.ticket_intake_submissions submission
  join public.tickets ticket on ticket.id = submission.ticket_id
  where submission.account_id = intake_replay.account_id
    and submission.idempotency_key = intake_replay.idempotency_key;

  if not found then
    return null;
  end if;

  if previous.request_hash is distinct from intake_replay.request_hash then
    raise exception 'http_422: Idempotency-Key was already used with a different submission';
  end if;

  return jsonb_build_object('ticket_id', previous.ticket_id, 'reference', previous.reference);
end;
$$;

comment on function kit.intake_replay(uuid, text, text) is 'The ticket an earlier submission with this idempotency key created, or null; raises http_422 when the request hash differs.';

revoke all on function kit.intake_replay(uuid, text, text) from public, anon, authenticated, service_role;

/*
 * Function: kit.intake_ip_bucket(account_id, client_ip)
 *
 * The per-IP rate-limit bucket of a client on an account. IPv6 clients are
 * counted per /64, the block one subscriber usually gets, since counting
 * single addresses would give every such client billions of them. What does
 * not parse as an address is counted as given, and a missing address as
 * 'unknown', so clients the edge could not identify share one bucket rather
 * than escape the limit.
 */
create or replace function kit.intake_ip_bucket(account_id uuid, client_ip text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  address inet;
  client text := nullif(btrim(client_ip), '');
begin
  begin
    address := client::inet;
  exception
    when invalid_text_representation then
      address := null;
  end;

  return 'ip:' || account_id || ':' || case
    when address is null then coalesce(left(client, 100), 'unknown')
    when family(address) = 6 then network(set_masklen(address, 64))::text
    else host(address)
  end;
end;
$$;

comment on function kit.intake_ip_bucket(uuid, text) is 'Rate-limit bucket of a client IP on an account: ip:<account>:<address>, IPv6 grouped per /64.';

revoke all on function kit.intake_ip_bucket(uuid, text) from public, anon, authenticated, service_role;

/*
 * Function: kit.count_intake_hit(bucket, window_start, window_end)
 *
 * Adds one hit to the bucket's window and returns the window's total. The
 * upsert makes concurrent hits add up rather than overwrite each other.
 */
create or replace function kit.count_intake_hit(
  bucket text,
  window_start timestamptz,
  window_end timestamptz
)
returns integer
language sql
volatile
set search_path = ''
as $$
  insert into kit.intake_rate_counters as counter (bucket, window_start, expires_at, hits)
  values (count_intake_hit.bucket, count_intake_hit.window_start, count_intake_hit.window_end, 1)
  on conflict (bucket, window_start) do update
    set hits = counter.hits + 1
  returning counter.hits;
$$;

comment on function kit.count_intake_hit(text, timestamptz, timestamptz) is 'Counts one hit in a rate-limit bucket''s fixed window and returns the window''s total.';

revoke all on function kit.count_intake_hit(text, timestamptz, timestamptz) from public, anon, authenticated, service_role;

/*
 * Function: public.intake_begin(p_intake_key, p_client_ip, p_idempotency_key, p_request_hash)
 *
 * Called before the captcha is verified. Raises http_404 for an unknown or
 * disabled key, and http_422 when p_idempotency_key was already used with
 * another p_request_hash. Otherwise returns
 *
 *   {"account_id", "allowed_origins": [...], "default_category",
 *    "allowed_categories": [...] | null, "default_priority",
 *    "allowed_priorities": [...], "thank_you_url": text | null,
 *    "retry_after": null | seconds, "replay": null | {"ticket_id", "reference"}}
 *
 * With a replay, the Worker answers with that ticket and skips the captcha;
 * a replay counts no hit. Otherwise one hit is counted in the client's IP
 * bucket and in the account's, in the current fixed window (windows are
 * aligned to the epoch, rate_limit_window_seconds long); when either is
 * over its limit, retry_after is the whole seconds until the window ends
 * (at least 1). Over the limit is an answer, not an error: raising would
 * roll back the hit just counted.
 *
 * Expired windows are deleted on the way, a bounded batch per call, skipping
 * rows a concurrent call is already deleting.
 */
create or replace function public.intake_begin(
  p_intake_key text,
  p_client_ip text,
  p_idempotency_key text default null,
  p_request_hash text default null
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
  current_window_start timestamptz;
  current_window_end timestamptz;
  ip_hits integer;
  account_hits integer;
begin
  intake := kit.enabled_intake(p_intake_key);
  replay := kit.intake_replay(intake.account_id, p_idempotency_key, p_request_hash);

  if replay is null then
    current_window_start := to_timestamp(
      floor(extract(epoch from now()) / intake.rate_limit_window_seconds) * intake.rate_limit_window_seconds
    );
    current_window_end := current_window_start + make_interval(secs => intake.rate_limit_window_seconds);

    delete from kit.intake_rate_counters expired
    where (expired.bucket, expired.window_start) in (
      select old.bucket, old.window_start
      from kit.intake_rate_counters old
      where old.expires_at <= now()
      limit 100
      for update skip locked
    );

    ip_hits := kit.count_intake_hit(
      kit.intake_ip_bucket(intake.account_id, p_client_ip),
      current_window_start,
      current_window_end
    );
    account_hits := kit.count_intake_hit(
      'account:' || intake.account_id,
      current_window_start,
      current_window_end
    );

    if ip_hits > intake.rate_limit_per_ip or account_hits > intake.rate_limit_per_account then
      retry_after := greatest(1, ceil(extract(epoch from current_window_end - now())))::integer;
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
    'replay', replay
  );
end;
$$;

comment on function public.intake_begin(text, text, text, text) is 'Ticket intake, before the captcha: the intake''s settings, a replay of an earlier submission with the same idempotency key, or retry_after when rate limited. service_role only.';

revoke all on function public.intake_begin(text, text, text, text) from public, anon, authenticated, service_role;
grant execute on function public.intake_begin(text, text, text, text) to service_role;

/*
 * Function: public.intake_submit(p_intake_key, p_title, p_content,
 *   p_customer_email, p_captcha_token_hash, p_customer_name, p_category,
 *   p_priority, p_idempotency_key, p_request_hash, p_client_ip)
 *
 * Called after the captcha passed; p_captcha_token_hash is the SHA-256 of
 * the token, lowercase hex. In one transaction:
 *
 *   - the intake must still be enabled (http_404);
 *   - with p_idempotency_key, submissions with the same key on the account
 *     are serialised by an advisory lock, so of two racing requests one
 *     creates the ticket and the other returns it with "created": false
 *     (http_422 if its request hash differs);
 *   - a missing email, or a category or priority the intake does not
 *     accept, raise http_422 (null category and priority take the
 *     intake's defaults);
 *   - a captcha token hash already recorded raises http_409, also when a
 *     concurrent submission records it first;
 *   - then the ticket, its first message (author 'customer') and the
 *     submission record are inserted.
 *
 * Returns {"ticket_id", "reference", "created": true | false, "thank_you_url"}.
 * Title, email and name are trimmed; the message is stored as written.
 */
create or replace function public.intake_submit(
  p_intake_key text,
  p_title text,
  p_content text,
  p_customer_email text,
  p_captcha_token_hash text,
  p_customer_name text default null,
  p_category text default null,
  p_priority public.ticket_priority default null,
  p_idempotency_key text default null,
  p_request_hash text default null,
  p_client_ip text default null
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
  chosen_category text;
  chosen_priority public.ticket_priority;
  new_ticket_id uuid;
  new_reference text;
  violated_constraint text;
begin
  intake := kit.enabled_intake(p_intake_key);

  if p_idempotency_key is not null then
    -- Held until commit; the replay lookup below is a new statement, so it
    -- sees a submission the lock holder committed.
    perform pg_advisory_xact_lock(
      hashtextextended('intake_submit:' || intake.account_id || ':' || p_idempotency_key, 0)
    );
    replay := kit.intake_replay(intake.account_id, p_idempotency_key, p_request_hash);
    if replay is not null then
      return replay || jsonb_build_object('created', false, 'thank_you_url', intake.thank_you_url);
    end if;
  end if;

  if nullif(btrim(p_customer_email), '') is null then
    raise exception 'http_422: A customer email is required';
  end if;

  chosen_category := coalesce(nullif(btrim(p_category), ''), intake.default_category);
  if intake.allowed_categories is not null
     and not chosen_category = any (intake.allowed_categories) then
    raise exception 'http_422: This form does not accept that category';
  end if;

  chosen_priority := coalesce(p_priority, intake.default_priority);
  if not chosen_priority = any (intake.allowed_priorities) then
    raise exception 'http_422: This form does not accept that priority';
  end if;

  if exists (
    select 1
    from public.ticket_intake_submissions submission
    where submission.captcha_token_hash = p_captcha_token_hash
  ) then
    raise exception 'http_409: This captcha token was already used';
  end if;

  insert into public.tickets (account_id, title, category, priority, customer_email, customer_name)
  values (
    intake.account_id,
    btrim(p_title),
    chosen_category,
    chosen_priority,
    btrim(p_customer_email),
    nullif(btrim(p_customer_name), '')
  )
  returning id, reference into new_ticket_id, new_reference;

  insert into public.messages (ticket_id, author, content)
  values (new_ticket_id, 'customer', p_content);

  begin
    insert into public.ticket_intake_submissions (
      account_id,
      ticket_id,
      idempotency_key,
      request_hash,
      captcha_token_hash,
      client_ip
    )
    values (
      intake.account_id,
      new_ticket_id,
      p_idempotency_key,
      p_request_hash,
      p_captcha_token_hash,
      p_client_ip
    );
  exception
    -- A concurrent submission recorded the same token after the check
    -- above; the raise rolls back the ticket and message too.
    when unique_violation then
      get stacked diagnostics violated_constraint = constraint_name;
      if violated_constraint = 'ticket_intake_submissions_captcha_token_hash_key' then
        raise exception 'http_409: This captcha token was already used';
      end if;
      raise;
  end;

  return jsonb_build_object(
    'ticket_id', new_ticket_id,
    'reference', new_reference,
    'created', true,
    'thank_you_url', intake.thank_you_url
  );
end;
$$;

comment on function public.intake_submit(text, text, text, text, text, text, text, public.ticket_priority, text, text, text) is 'Ticket intake, after the captcha: creates the ticket, its first message and the submission record once per idempotency key and captcha token. service_role only.';

revoke all on function public.intake_submit(text, text, text, text, text, text, text, public.ticket_priority, text, text, text) from public, anon, authenticated, service_role;
grant execute on function public.intake_submit(text, text, text, text, text, text, text, public.ticket_priority, text, text, text) to service_role;
