/*
 * Intake: the account's rate-limit window counts tickets, and the
 * account's category and priority rules are answered before the captcha.
 *
 * Until now public.intake_begin counted a hit in the account's window on
 * every call, before the Origin check and the captcha, including calls
 * already refused by their own IP window: one address sending junk could
 * fill the account's window and keep every real visitor at 429, without
 * solving a single captcha. From here on:
 *
 *   - intake_begin counts only the client's IP window. It reads the
 *     account's window, so a visitor is told 429 before spending a captcha
 *     on a form that is full, but adds nothing to it;
 *   - intake_submit, which runs only after the captcha passed, takes one
 *     slot of the account's window in the transaction that creates the
 *     ticket. A submission that is refused (a used token, a category the
 *     form does not accept) rolls its slot back with everything else, and
 *     a replay takes none. So the account's budget is spent by tickets, and
 *     nothing else.
 *
 * intake_begin also takes the submission's category and priority and
 * answers the account's rules for them as field errors ("errors"), so the
 * Worker can refuse them with the other fields' errors before the captcha
 * is spent; intake_submit keeps checking them, with the same helper, as the
 * last line of defence.
 *
 * intake_begin gains two parameters, so the old signature is dropped (an
 * overload would make PostgREST's choice between them ambiguous). Both new
 * parameters default to null, so a Worker built before this migration
 * keeps working against it.
 */

/*
 * Function: kit.intake_window(intake)
 *
 * The intake's current fixed rate-limit window: windows are aligned to the
 * epoch and rate_limit_window_seconds long.
 */
create or replace function kit.intake_window(
  intake public.ticket_intakes,
  out window_start timestamptz,
  out window_end timestamptz
)
language sql
stable
set search_path = ''
as $$
  select start, start + make_interval(secs => intake.rate_limit_window_seconds)
  from (
    select to_timestamp(
      floor(extract(epoch from now()) / intake.rate_limit_window_seconds) * intake.rate_limit_window_seconds
    ) as start
  ) as current_window;
$$;

comment on function kit.intake_window(public.ticket_intakes) is 'The intake''s current fixed rate-limit window (start and end), aligned to the epoch.';

revoke all on function kit.intake_window(public.ticket_intakes) from public, anon, authenticated, service_role;

/*
 * Function: kit.intake_retry_after(window_end)
 *
 * Whole seconds until the window ends, at least 1: the Retry-After of a
 * request refused by that window.
 */
create or replace function kit.intake_retry_after(window_end timestamptz)
returns integer
language sql
stable
set search_path = ''
as $$
  select greatest(1, ceil(extract(epoch from intake_retry_after.window_end - now())))::integer;
$$;

comment on function kit.intake_retry_after(timestamptz) is 'Seconds (at least 1) until a rate-limit window ends.';

revoke all on function kit.intake_retry_after(timestamptz) from public, anon, authenticated, service_role;

/*
 * Function: kit.take_intake_slot(bucket, window_start, window_end, hit_limit)
 *
 * Counts one hit in the bucket's window if the window has fewer than
 * hit_limit; true when it was counted, false when the window is full. The
 * check and the count are one statement under the counter row's lock, so
 * concurrent callers cannot together take more than hit_limit slots, and a
 * refused caller adds nothing.
 */
create or replace function kit.take_intake_slot(
  bucket text,
  window_start timestamptz,
  window_end timestamptz,
  hit_limit integer
)
returns boolean
language sql
volatile
set search_path = ''
as $$
  with counted as (
    insert into kit.intake_rate_counters as counter (bucket, window_start, expires_at, hits)
    values (take_intake_slot.bucket, take_intake_slot.window_start, take_intake_slot.window_end, 1)
    on conflict (bucket, window_start) do update
      set hits = counter.hits + 1
      where counter.hits < take_intake_slot.hit_limit
    returning 1
  )
  select exists (select 1 from counted);
$$;

comment on function kit.take_intake_slot(text, timestamptz, timestamptz, integer) is 'Counts one hit in a rate-limit window unless it already holds hit_limit; returns whether it counted.';

revoke all on function kit.take_intake_slot(text, timestamptz, timestamptz, integer) from public, anon, authenticated, service_role;

/*
 * Function: kit.intake_field_errors(intake, category, priority)
 *
 * The account's rules for a submission's category and priority, as the
 * field errors a 422 lists: [{"field", "message"}], empty when both are
 * accepted. A blank or null category and a null priority take the
 * intake's defaults, which its constraints keep acceptable.
 */
create or replace function kit.intake_field_errors(
  intake public.ticket_intakes,
  category text,
  priority public.ticket_priority
)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object('field', failed.field, 'message', failed.message) order by failed.position), '[]'::jsonb)
  from (
    select 1 as position, 'category' as field,
           'must be one of: ' || array_to_string(intake.allowed_categories, ', ') as message
    where intake.allowed_categories is not null
      and not coalesce(nullif(btrim(intake_field_errors.category), ''), intake.default_category) = any (intake.allowed_categories)
    union all
    select 2, 'priority',
           'must be one of: ' || array_to_string(intake.allowed_priorities, ', ')
    where not coalesce(intake_field_errors.priority, intake.default_priority) = any (intake.allowed_priorities)
  ) as failed;
$$;

comment on function kit.intake_field_errors(public.ticket_intakes, text, public.ticket_priority) is 'Field errors ([{field, message}]) for a category or priority the intake does not accept; [] when both are accepted.';

revoke all on function kit.intake_field_errors(public.ticket_intakes, text, public.ticket_priority) from public, anon, authenticated, service_role;

/*
 * Function: public.intake_begin(p_intake_key, p_client_ip, p_idempotency_key,
 *   p_request_hash, p_category, p_priority)
 *
 * Called before the captcha is verified. Raises http_404 for an unknown or
 * disabled key, and http_422 when p_idempotency_key was already used with
 * another p_request_hash. Otherwise returns
 *
 *   {"account_id", "allowed_origins": [...], "default_category",
 *    "allowed_categories": [...] | null, "default_priority",
 *    "allowed_priorities": [...], "thank_you_url": text | null,
 *    "retry_after": null | seconds, "replay": null | {"ticket_id", "reference"},
 *    "errors": [{"field", "message"}]}
 *
 * With a replay, the Worker answers with that ticket and skips the captcha;
 * a replay counts no hit. Otherwise one hit is counted in the client's IP
 * bucket (also when it is over its limit: an address that keeps sending
 * stays limited), and retry_after is set when the IP bucket is over its
 * limit or the account's window already holds rate_limit_per_account
 * tickets. The account's window is only read here; intake_submit counts
 * it. Over the limit is an answer, not an error: raising would roll back
 * the hit just counted.
 *
 * "errors" lists p_category and p_priority when the intake does not accept
 * them (kit.intake_field_errors); the Worker answers them as a 422.
 *
 * Expired windows are deleted on the way, a bounded batch per call, skipping
 * rows a concurrent call is already deleting.
 */
drop function if exists public.intake_begin(text, text, text, text);

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
      where old.expires_at <= now()
      limit 100
      for update skip locked
    );

    ip_hits := kit.count_intake_hit(
      kit.intake_ip_bucket(intake.account_id, p_client_ip),
      current_window.window_start,
      current_window.window_end
    );
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

comment on function public.intake_begin(text, text, text, text, text, public.ticket_priority) is 'Ticket intake, before the captcha: the intake''s settings, a replay of an earlier submission with the same idempotency key, retry_after when the IP or the account is rate limited, and field errors for a category or priority the intake does not accept. Counts the IP window only. service_role only.';

revoke all on function public.intake_begin(text, text, text, text, text, public.ticket_priority) from public, anon, authenticated, service_role;
grant execute on function public.intake_begin(text, text, text, text, text, public.ticket_priority) to service_role;

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
 *     (http_422 if its request hash differs); a replay takes no slot;
 *   - a missing email, or a category or priority the intake does not
 *     accept, raise http_422 (null category and priority take the
 *     intake's defaults);
 *   - a captcha token hash already recorded raises http_409, also when a
 *     concurrent submission records it first;
 *   - then the ticket, its first message (author 'customer') and the
 *     submission record are inserted;
 *   - last, the ticket takes a slot in the account's rate-limit window.
 *     When the window is full (requests that passed intake_begin together
 *     filled it), the inserts are undone and the answer is
 *     {"retry_after": seconds}: nothing is written, and the token is not
 *     recorded as used. The slot is taken last so that the counter row's
 *     lock, which orders concurrent tickets of one account, is held only
 *     until commit.
 *
 * Returns {"ticket_id", "reference", "created": true | false,
 * "thank_you_url"}, or {"retry_after"} when the account's window is full.
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
  field_errors jsonb;
  current_window record;
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

  field_errors := kit.intake_field_errors(intake, p_category, p_priority);
  if field_errors @> '[{"field": "category"}]' then
    raise exception 'http_422: This form does not accept that category';
  end if;
  if field_errors @> '[{"field": "priority"}]' then
    raise exception 'http_422: This form does not accept that priority';
  end if;

  if exists (
    select 1
    from public.ticket_intake_submissions submission
    where submission.captcha_token_hash = p_captcha_token_hash
  ) then
    raise exception 'http_409: This captcha token was already used';
  end if;

  select * into current_window from kit.intake_window(intake);

  begin
    insert into public.tickets (account_id, title, category, priority, customer_email, customer_name)
    values (
      intake.account_id,
      btrim(p_title),
      coalesce(nullif(btrim(p_category), ''), intake.default_category),
      coalesce(p_priority, intake.default_priority),
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

    if not kit.take_intake_slot(
      'account:' || intake.account_id,
      current_window.window_start,
      current_window.window_end,
      intake.rate_limit_per_account
    ) then
      -- Caught just below: leaving this block undoes its inserts.
      raise exception using errcode = 'PT429', message = 'the account''s rate-limit window is full';
    end if;
  exception
    when sqlstate 'PT429' then
      return jsonb_build_object('retry_after', kit.intake_retry_after(current_window.window_end));
  end;

  return jsonb_build_object(
    'ticket_id', new_ticket_id,
    'reference', new_reference,
    'created', true,
    'thank_you_url', intake.thank_you_url
  );
end;
$$;

comment on function public.intake_submit(text, text, text, text, text, text, text, public.ticket_priority, text, text, text) is 'Ticket intake, after the captcha: creates the ticket, its first message and the submission record once per idempotency key and captcha token, each ticket taking a slot of the account''s rate-limit window ({"retry_after"} when it is full). service_role only.';

revoke all on function public.intake_submit(text, text, text, text, text, text, text, public.ticket_priority, text, text, text) from public, anon, authenticated, service_role;
grant execute on function public.intake_submit(text, text, text, text, text, text, text, public.ticket_priority, text, text, text) to service_role;

/*
 * Browsers ask ticket-intake, for every preflight and every cross-origin
 * answer, whether some enabled intake lists the page's origin
 * (allowed_origins @> '{origin}'); this index serves that lookup.
 */
create index if not exists ix_ticket_intakes_allowed_origins
  on public.ticket_intakes using gin (allowed_origins);
