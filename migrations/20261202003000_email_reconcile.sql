/*
 * Email reconciliation: no mail stays `reserved` (or `unknown`) forever.
 *
 * A mail whose finalize failed after the provider answered, whose Worker
 * died mid-request, or whose provider gave no certain answer, waits for
 * the reconciler (send-email's cron, or an operator through
 * `POST /emails/reconcile`). It claims stale mails in small batches, asks
 * the provider what became of each (Resend: the same request again under
 * the same Idempotency-Key, which Resend answers with the original result
 * for 24 hours; Postmark: its outbound message search, by the send key
 * attached as metadata), and settles each through public.finalize_email.
 * What the provider cannot tell is handed to an operator.
 *
 * A claim is a row here: the first run to claim a mail owns it for
 * `p_retry_after_secs`; a run that overlaps it claims other mails or none,
 * so two runs never ask about, nor settle, one mail at once. finalize_email
 * settles a mail once anyway (sent and refunded are final, the refund is
 * unique in the ledger); the claim is what keeps the provider from being
 * asked twice.
 */

/*
 * Table: public.email_reconcile_claims
 *
 * One row per mail the reconciler has taken up: when it last claimed it,
 * how often, and, once it gave up, why an operator must decide
 * (`operator_reason`; such a mail is never claimed again). Service only:
 * senders see their mail's status in user_mails.
 */
create table if not exists public.email_reconcile_claims (
  mail_id uuid primary key references public.user_mails (id) on delete cascade,
  claimed_at timestamptz not null default now(),
  attempts integer not null default 1
    constraint email_reconcile_claims_attempts_positive check (attempts > 0),
  operator_reason text
    constraint email_reconcile_claims_operator_reason_length check (char_length(operator_reason) between 1 and 2000),
  operator_at timestamptz,
  constraint email_reconcile_claims_operator_at_iff_reason check ((operator_reason is null) = (operator_at is null))
);

comment on table public.email_reconcile_claims is 'The email reconciler''s claims on stale reserved/unknown mails (one per mail), and the mails it handed to an operator. Written only by claim_stale_emails and hold_email_for_operator; service_role reads.';
comment on column public.email_reconcile_claims.claimed_at is 'When a reconciler run last claimed the mail; no other run claims it for the retry interval.';
comment on column public.email_reconcile_claims.attempts is 'How many runs have claimed it.';
comment on column public.email_reconcile_claims.operator_reason is 'Why the provider could not tell what became of the mail (e.g. past Resend''s 24-hour idempotency window); set, the reconciler leaves the mail to an operator.';

-- Mails awaiting an operator, for the operator's query.
create index if not exists ix_email_reconcile_claims_operator
  on public.email_reconcile_claims (operator_at)
  where operator_reason is not null;

-- The reconciler's scan: stale mails only, oldest first. Partial, so sent
-- and refunded mails (nearly all of them) cost nothing.
create index if not exists ix_user_mails_unsettled_created_at
  on public.user_mails (created_at)
  where status in ('reserved', 'unknown');

revoke all on table public.email_reconcile_claims from public, anon, authenticated, service_role;
grant select on table public.email_reconcile_claims to service_role;

-- No policy: no API role but service_role (which bypasses RLS) reads it.
alter table public.email_reconcile_claims enable row level security;

/*
 * Function: public.claim_stale_emails(p_older_than_secs, p_limit,
 *   p_retry_after_secs, p_provider)
 *
 * Claims up to p_limit (1-500) mails that are `reserved` or `unknown`,
 * reserved more than p_older_than_secs ago (long enough that no send of
 * them can still be in flight), not claimed in the last p_retry_after_secs
 * and not handed to an operator; for p_provider, or reserved with no
 * provider yet. Returns each as JSON with what a resend needs (recipients,
 * subject, content, html, mail type, template, the sender and the key) and
 * its age in seconds by the database's clock.
 *
 * Exactly once under overlap: the scan locks its candidates `for update
 * skip locked` (a mail another run is claiming is skipped, not waited
 * for), and the claim itself is an upsert whose update only happens when
 * the stored claim is older than the retry interval, judged on the newest
 * committed row: a run whose scan began before another's claim committed
 * still finds the claim and takes nothing.
 *
 * SECURITY DEFINER because service_role may only read user_mails and
 * nothing may write the claims through the API; search_path is pinned and
 * only service_role may execute it.
 */
create or replace function public.claim_stale_emails(
  p_older_than_secs integer,
  p_limit integer,
  p_retry_after_secs integer,
  p_provider text
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  claimed jsonb;
begin
  if p_older_than_secs is null or p_older_than_secs < 0 then
    raise exception 'http_422: p_older_than_secs must be 0 or more';
  end if;
  if p_limit is null or p_limit not between 1 and 500 then
    raise exception 'http_422: p_limit must be between 1 and 500';
  end if;
  if p_retry_after_secs is null or p_retry_after_secs < 0 then
    raise exception 'http_422: p_retry_after_secs must be 0 or more';
  end if;
  if nullif(btrim(p_provider), '') is null then
    raise exception 'http_422: A provider is required';
  end if;

  with candidates as (
    select user_mail.id
    from public.user_mails user_mail
    where user_mail.status in ('reserved', 'unknown')
      and user_mail.created_at < now() - make_interval(secs => p_older_than_secs)
      and coalesce(user_mail.provider, btrim(p_provider)) = btrim(p_provider)
      and not exists (
        select 1
        from public.email_reconcile_claims claim
        where claim.mail_id = user_mail.id
          and (claim.operator_reason is not null
               or claim.claimed_at >= now() - make_interval(secs => p_retry_after_secs))
      )
    order by user_mail.created_at
    limit p_limit
    for update of user_mail skip locked
  ),
  claims as (
    insert into public.email_reconcile_claims as claim (mail_id, claimed_at, attempts)
    select candidates.id, now(), 1
    from candidates
    on conflict (mail_id) do update
      set claimed_at = now(),
          attempts = claim.attempts + 1
      where claim.operator_reason is null
        and claim.claimed_at < now() - make_interval(secs => p_retry_after_secs)
    returning claim.mail_id, claim.attempts
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'mail_id', user_mail.id,
           'user_id', user_mail.user_id,
           'status', user_mail.status,
           'provider', user_mail.provider,
           'recipients', to_jsonb(user_mail.recipients),
           'subject', user_mail.subject,
           'content', user_mail.content,
           'html', user_mail.html,
           'mail_type', user_mail.mail_type,
           'template_id', user_mail.template_id,
           'idempotency_key', user_mail.idempotency_key,
           'attempts', claims.attempts,
           'age_secs', floor(extract(epoch from now() - user_mail.created_at))::bigint
         ) order by user_mail.created_at), '[]'::jsonb)
  into claimed
  from claims
  join public.user_mails user_mail on user_mail.id = claims.mail_id;

  return claimed;
end;
$$;

comment on function public.claim_stale_emails(integer, integer, integer, text) is 'The email reconciler''s claim: up to p_limit stale reserved/unknown mails of p_provider, each claimed by one run only (skip locked + a conditional upsert). service_role only.';

revoke all on function public.claim_stale_emails(integer, integer, integer, text) from public, anon, authenticated, service_role;
grant execute on function public.claim_stale_emails(integer, integer, integer, text) to service_role;

/*
 * Function: public.hold_email_for_operator(p_mail_id, p_provider, p_reason)
 *
 * The reconciler gives up on a mail the provider cannot tell about: it is
 * recorded `unknown` (still charged: it may have been sent; a `reserved`
 * mail becomes `unknown`, so no mail stays reserved) with p_reason, and its
 * claim is marked for an operator, who settles it with finalize_email.
 * A mail already sent or refunded is left as it is. Returns the mail as
 * finalize_email does. service_role only, for the reasons of
 * claim_stale_emails.
 */
create or replace function public.hold_email_for_operator(
  p_mail_id uuid,
  p_provider text,
  p_reason text
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  reason text := left(coalesce(nullif(btrim(p_reason), ''), 'no reason given'), 2000);
  mail jsonb;
begin
  mail := public.finalize_email(p_mail_id, p_provider, 'unknown', null, reason);

  if mail ->> 'status' = 'unknown' then
    insert into public.email_reconcile_claims as claim (mail_id, operator_reason, operator_at)
    values (p_mail_id, reason, now())
    on conflict (mail_id) do update
      set operator_reason = excluded.operator_reason,
          operator_at = excluded.operator_at
      where claim.operator_reason is null;
  end if;

  return mail;
end;
$$;

comment on function public.hold_email_for_operator(uuid, text, text) is 'The email reconciler hands a mail it cannot settle to an operator: unknown (still charged), never claimed again. service_role only.';

revoke all on function public.hold_email_for_operator(uuid, text, text) from public, anon, authenticated, service_role;
grant execute on function public.hold_email_for_operator(uuid, text, text) to service_role;
