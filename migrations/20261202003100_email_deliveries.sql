/*
 * Email deliveries: what happened to a mail after the provider accepted it.
 *
 * send-email's `POST /webhooks/email/resend` and `/webhooks/email/postmark`
 * verify the providers' delivery, bounce and complaint webhooks and record
 * each through public.record_email_event, once per provider event id (a
 * redelivery keeps its id). The mail's own row carries the outcome its
 * sender sees under RLS: `delivery_status` (delivered, delayed, bounced,
 * complained), when, and why.
 *
 * A mail to several recipients has one status, the worst heard so far
 * (complained > bounced > delayed-or-delivered, later events of one rank
 * replacing earlier ones; a delivery after a delay replaces it): a bounce
 * for one recipient is not undone by another's delivery. Each event, with
 * its recipient, is in public.email_events.
 *
 * Policy: a bounce does not refund. The provider did the work (it accepted
 * and tried to deliver the mail), and a refund for a bad address would let
 * a sender probe addresses for free.
 */

alter table public.user_mails
  add column if not exists delivery_status text
    constraint user_mails_delivery_status_known check (delivery_status in ('delivered', 'delayed', 'bounced', 'complained')),
  add column if not exists delivery_status_at timestamptz,
  add column if not exists delivery_reason text
    constraint user_mails_delivery_reason_length check (char_length(delivery_reason) <= 2000),
  add constraint user_mails_delivery_status_at_iff_status check ((delivery_status is null) = (delivery_status_at is null));

comment on column public.user_mails.delivery_status is 'What the provider''s webhooks said after accepting the mail: delivered, delayed, bounced or complained (the worst heard for any recipient); null until one is heard.';
comment on column public.user_mails.delivery_status_at is 'When the event behind delivery_status happened, by the provider.';
comment on column public.user_mails.delivery_reason is 'The provider''s reason for a bounce or complaint (or its delivery details).';

-- Webhooks find their mail by the provider's message id.
create index if not exists ix_user_mails_provider_message_id
  on public.user_mails (provider, provider_message_id)
  where provider_message_id is not null;

/*
 * Table: public.email_events
 *
 * Every delivery, delay, bounce and complaint a provider's webhook told,
 * once per (provider, event_id). `mail_id` and `user_id` are null for a
 * message this product did not send (the provider account may serve
 * others). Senders read the events of their own mails; nobody writes
 * through the API.
 */
create table if not exists public.email_events (
  id bigint generated always as identity primary key,
  provider text not null
    constraint email_events_provider_format check (char_length(provider) between 1 and 50),
  event_id text not null
    constraint email_events_event_id_length check (char_length(event_id) between 1 and 255),
  provider_message_id text not null
    constraint email_events_provider_message_id_length check (char_length(provider_message_id) between 1 and 255),
  mail_id uuid references public.user_mails (id) on delete cascade,
  user_id uuid references public.profiles (id) on delete cascade,
  type text not null
    constraint email_events_type_known check (type in ('delivered', 'delayed', 'bounced', 'complained')),
  permanent boolean not null default false,
  recipient text
    constraint email_events_recipient_length check (char_length(recipient) <= 320),
  reason text
    constraint email_events_reason_length check (char_length(reason) <= 2000),
  occurred_at timestamptz not null,
  received_at timestamptz not null default now(),
  constraint email_events_provider_event_id_key unique (provider, event_id),
  constraint email_events_user_iff_mail check ((mail_id is null) = (user_id is null))
);

comment on table public.email_events is 'Providers'' delivery, delay, bounce and complaint webhooks, each recorded once per (provider, event_id). Written only by record_email_event; senders read their own mails'' events.';
comment on column public.email_events.permanent is 'For a bounce: whether it is permanent (a hard bounce: the address does not exist or refuses mail).';

create index if not exists ix_email_events_mail_id on public.email_events (mail_id);
create index if not exists ix_email_events_user_id on public.email_events (user_id);

revoke all on table public.email_events from public, anon, authenticated, service_role;
revoke all on sequence public.email_events_id_seq from public, anon, authenticated, service_role;
grant select on table public.email_events to authenticated, service_role;

alter table public.email_events enable row level security;

create policy "Email events are viewable by the mail's sender"
  on public.email_events
  for select
  to authenticated
  using (user_id = (select auth.uid()));

/*
 * Function: kit.guard_user_mail_update()
 *
 * Replaces 20261201003000's: as there, only the outcome of a reserved or
 * unknown mail may change (never back to reserved) and every other column
 * is fixed at reservation; now the delivery columns (delivery_status,
 * delivery_status_at, delivery_reason) may change on any mail, since a
 * delivery is heard after the mail was finalized. They change nothing of
 * what was sent or charged.
 */
create or replace function kit.guard_user_mail_update()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  delivery constant text[] := array['delivery_status', 'delivery_status_at', 'delivery_reason', 'updated_at'];
  outcome constant text[] := array['status', 'provider', 'provider_message_id', 'error', 'sent_at',
                                   'created_at', 'updated_at',
                                   'delivery_status', 'delivery_status_at', 'delivery_reason'];
begin
  if (to_jsonb(new) - delivery) is not distinct from (to_jsonb(old) - delivery) then
    return new;
  end if;

  if old.status not in ('reserved', 'unknown') then
    raise exception 'a % mail cannot change', old.status
      using errcode = 'check_violation',
            detail = format('mail %s is already finalized', old.id),
            table = 'user_mails',
            schema = 'public';
  end if;

  if old.status = 'unknown' and new.status = 'reserved' then
    raise exception 'an unknown mail is settled as sent or refunded, never reserved again'
      using errcode = 'check_violation',
            detail = format('mail %s may have been sent', old.id),
            table = 'user_mails',
            schema = 'public';
  end if;

  if (to_jsonb(new) - outcome) is distinct from (to_jsonb(old) - outcome) then
    raise exception 'only the outcome of a reserved or unknown mail can change'
      using errcode = 'check_violation',
            detail = 'status, provider, provider_message_id, error and sent_at may change; the rest is fixed at reservation.',
            table = 'user_mails',
            schema = 'public';
  end if;

  return new;
end;
$$;

comment on function kit.guard_user_mail_update() is 'BEFORE UPDATE trigger on user_mails: only the outcome of a reserved or unknown mail may change, an unknown mail never back to reserved; the delivery columns may change on any mail; everything else is fixed.';

revoke all on function kit.guard_user_mail_update() from public, anon, authenticated, service_role;

/*
 * Function: public.record_email_event(p_provider, p_event_id,
 *   p_provider_message_id, p_type, p_permanent, p_recipient, p_reason,
 *   p_occurred_at)
 *
 * Records one verified webhook event, once: a second call with the same
 * (p_provider, p_event_id) changes nothing and answers
 * {"duplicate": true}. Otherwise the event is kept and, when it is about a
 * mail this product sent (found by provider and message id), the mail's
 * delivery status moves to it if it ranks at least as high as the current
 * one (complained 3 > bounced 2 > delayed, delivered 1; a bounce is not
 * undone by another recipient's delivery). Returns {"duplicate", "mail_id"
 * (null for a message we did not send), "delivery_status"}.
 *
 * SECURITY DEFINER because nothing may write these tables through the API;
 * search_path pinned, service_role only (send-email calls it after
 * verifying the provider's signature or credentials).
 */
create or replace function public.record_email_event(
  p_provider text,
  p_event_id text,
  p_provider_message_id text,
  p_type text,
  p_permanent boolean,
  p_recipient text,
  p_reason text,
  p_occurred_at timestamptz
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  mail public.user_mails;
  event_row public.email_events;
  rank_of constant jsonb := '{"delayed": 1, "delivered": 1, "bounced": 2, "complained": 3}';
begin
  if nullif(btrim(p_provider), '') is null or nullif(btrim(p_event_id), '') is null
     or nullif(btrim(p_provider_message_id), '') is null then
    raise exception 'http_422: A provider, an event id and a message id are required';
  end if;
  if p_type is null or not (rank_of ? p_type) then
    raise exception 'http_422: The type must be delivered, delayed, bounced or complained';
  end if;
  if p_occurred_at is null then
    raise exception 'http_422: When the event happened is required';
  end if;

  select *
  into mail
  from public.user_mails user_mail
  where user_mail.provider = btrim(p_provider)
    and user_mail.provider_message_id = btrim(p_provider_message_id)
  for update;

  insert into public.email_events (provider, event_id, provider_message_id, mail_id, user_id, type, permanent,
                                   recipient, reason, occurred_at)
  values (btrim(p_provider), btrim(p_event_id), btrim(p_provider_message_id), mail.id, mail.user_id, p_type,
          coalesce(p_permanent, false), left(lower(btrim(p_recipient)), 320), left(p_reason, 2000), p_occurred_at)
  on conflict (provider, event_id) do nothing
  returning * into event_row;

  if event_row.id is null then
    return jsonb_build_object('duplicate', true, 'mail_id', mail.id, 'delivery_status', mail.delivery_status);
  end if;

  if mail.id is not null and mail.status in ('sent', 'unknown') and (
       mail.delivery_status is null
       or (rank_of ->> p_type)::int > (rank_of ->> mail.delivery_status)::int
       or ((rank_of ->> p_type)::int = (rank_of ->> mail.delivery_status)::int
           and p_occurred_at >= mail.delivery_status_at)
     ) then
    update public.user_mails user_mail
    set delivery_status = p_type,
        delivery_status_at = p_occurred_at,
        delivery_reason = left(p_reason, 2000)
    where user_mail.id = mail.id
    returning * into mail;
  end if;

  return jsonb_build_object('duplicate', false, 'mail_id', mail.id, 'delivery_status', mail.delivery_status);
end;
$$;

comment on function public.record_email_event(text, text, text, text, boolean, text, text, timestamptz) is 'Records a verified email webhook event once per (provider, event_id) and moves the mail''s delivery status to the worst heard. service_role only.';

revoke all on function public.record_email_event(text, text, text, text, boolean, text, text, timestamptz) from public, anon, authenticated, service_role;
grant execute on function public.record_email_event(text, text, text, text, boolean, text, text, timestamptz) to service_role;
