/*
 * Email settings: the operator's sending policy, and its exceptions per
 * sender. public.reserve_email enforces both before it charges anything,
 * so no caller (the Worker, or a user calling PostgREST directly) gets
 * around them.
 *
 * Mail goes out from the brand's own address (EMAIL_FROM), so what any
 * signed-up user may put in it is the operator's reputation. The shipped
 * defaults are the safe ones:
 *
 *   - custom_content_allowed = false: only the provider's templates, which
 *     the operator wrote, filled with the sender's variables; no subject,
 *     html or text of the sender's own. Otherwise anyone with an account is
 *     a phishing relay for the brand's domain.
 *   - daily_mail_limit = 100, daily_recipient_limit = 200: per sender, over
 *     the last 24 hours, counting every mail that was or may have been sent
 *     (all but refunded ones). Enough for a person's or a small team's
 *     transactional mail; a stolen or throwaway account reaches 200 inboxes
 *     a day at most, instead of its whole balance at once.
 *
 * An operator changes the policy with the service key or SQL
 * (`update public.email_settings set ...`) and takes effect at the next
 * reservation; public.email_sender_settings overrides any of it for one
 * sender (null keeps the default), e.g. to allow a vetted customer their own
 * html, raise their limits, or stop one sender with a limit of 0.
 */

/*
 * Table: public.email_settings
 *
 * Exactly one row (id is always true). service_role may change its values
 * but not add or remove the row, so reserve_email always finds a policy.
 */
create table if not exists public.email_settings (
  id boolean primary key default true
    constraint email_settings_one_row check (id),
  custom_content_allowed boolean not null default false,
  daily_mail_limit integer not null default 100
    constraint email_settings_daily_mail_limit_not_negative check (daily_mail_limit >= 0),
  daily_recipient_limit integer not null default 200
    constraint email_settings_daily_recipient_limit_not_negative check (daily_recipient_limit >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.email_settings is 'The operator''s sending policy, one row: whether senders may send their own subject, html and text, and how many mails and recipients each may send in 24 hours. Enforced by reserve_email; readable by signed-in users; changed by service_role.';
comment on column public.email_settings.id is 'Always true: the table has one row.';
comment on column public.email_settings.custom_content_allowed is 'Whether senders may send their own subject, html and text (custom mails, and a subject on template mails). Default false: templates only.';
comment on column public.email_settings.daily_mail_limit is 'Mails a sender may reserve in any 24 hours, refunded ones not counted; 0 stops sending. Default 100.';
comment on column public.email_settings.daily_recipient_limit is 'Recipients, over all of a sender''s mails, in any 24 hours, refunded ones not counted; 0 stops sending. Default 200.';

insert into public.email_settings (id) values (true) on conflict (id) do nothing;

revoke all on table public.email_settings from public, anon, authenticated, service_role;
grant select on table public.email_settings to authenticated, service_role;
grant update (custom_content_allowed, daily_mail_limit, daily_recipient_limit) on table public.email_settings
  to service_role;

alter table public.email_settings enable row level security;

create policy "Email settings are viewable by signed-in users"
  on public.email_settings
  for select
  to authenticated
  using (true);

create trigger set_email_settings_timestamps
  before update on public.email_settings
  for each row execute function kit.set_timestamps();

/*
 * Table: public.email_sender_settings
 *
 * Exceptions to the policy for one sender; a null column keeps the
 * operator's default. Senders read their own row (to see why they may or
 * may not do something); only service_role writes.
 */
create table if not exists public.email_sender_settings (
  user_id uuid primary key references public.profiles (id) on delete cascade,
  custom_content_allowed boolean,
  daily_mail_limit integer
    constraint email_sender_settings_daily_mail_limit_not_negative check (daily_mail_limit >= 0),
  daily_recipient_limit integer
    constraint email_sender_settings_daily_recipient_limit_not_negative check (daily_recipient_limit >= 0),
  note text
    constraint email_sender_settings_note_length check (char_length(note) <= 500),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.email_sender_settings is 'Per-sender exceptions to public.email_settings (null: the default applies). Enforced by reserve_email; senders read their own; service_role writes.';
comment on column public.email_sender_settings.user_id is 'The sender, as in profiles.';
comment on column public.email_sender_settings.custom_content_allowed is 'Overrides email_settings.custom_content_allowed for this sender, either way.';
comment on column public.email_sender_settings.daily_mail_limit is 'Overrides email_settings.daily_mail_limit for this sender; 0 stops them sending.';
comment on column public.email_sender_settings.daily_recipient_limit is 'Overrides email_settings.daily_recipient_limit for this sender; 0 stops them sending.';
comment on column public.email_sender_settings.note is 'Why the exception was made, for the next operator; at most 500 characters.';

revoke all on table public.email_sender_settings from public, anon, authenticated, service_role;
grant select on table public.email_sender_settings to authenticated;
grant select, insert, update, delete on table public.email_sender_settings to service_role;

alter table public.email_sender_settings enable row level security;

create policy "Email sender settings are viewable by their senders"
  on public.email_sender_settings
  for select
  to authenticated
  using (user_id = (select auth.uid()));

create trigger set_email_sender_settings_timestamps
  before update on public.email_sender_settings
  for each row execute function kit.set_timestamps();
