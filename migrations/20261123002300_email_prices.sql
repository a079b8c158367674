/*
 * Email prices: what a mail costs, decided by the server.
 *
 * A mail costs, for each recipient (each gets a copy), the type's
 * credits_per_recipient plus credits_per_step for every started step_bytes
 * of content beyond the first included_bytes. With the values below, a
 * mail costs 1 credit per recipient, and 1 more per recipient for every
 * started 100 KiB of content past the first 100 KiB:
 *
 *   1 recipient,  2 KiB   -> 1        3 recipients, 150 KiB -> 3 x 2 = 6
 *   1 recipient,  100 KiB -> 1        1 recipient,  201 KiB -> 1 + 2 = 3
 *
 * Signed-in users read the prices (to show them); only service_role
 * changes them. A change applies to mails reserved afterwards: each mail
 * keeps what it cost in user_mails.credits_used.
 */

/*
 * Table: public.email_prices
 */
create table if not exists public.email_prices (
  mail_type text primary key
    constraint email_prices_mail_type_known check (mail_type in ('custom', 'template')),
  credits_per_recipient integer not null
    constraint email_prices_credits_per_recipient_positive check (credits_per_recipient > 0),
  included_bytes integer not null default 102400
    constraint email_prices_included_bytes_not_negative check (included_bytes >= 0),
  step_bytes integer not null default 102400
    constraint email_prices_step_bytes_positive check (step_bytes > 0),
  credits_per_step integer not null default 1
    constraint email_prices_credits_per_step_not_negative check (credits_per_step >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.email_prices is 'Price of a mail per type: per recipient, plus a surcharge per started step of content beyond what is included. Readable by signed-in users, changed by service_role.';
comment on column public.email_prices.mail_type is 'custom (the user''s own subject and body) or template (a provider template with variables).';
comment on column public.email_prices.credits_per_recipient is 'Credits per recipient for a mail whose content fits in included_bytes; at least 1, so every mail costs something.';
comment on column public.email_prices.included_bytes is 'Content size (UTF-8 bytes) covered by credits_per_recipient.';
comment on column public.email_prices.step_bytes is 'Size of each surcharged step of content beyond included_bytes.';
comment on column public.email_prices.credits_per_step is 'Credits per recipient for every started step_bytes beyond included_bytes.';

revoke all on table public.email_prices from public, anon, authenticated, service_role;
grant select on table public.email_prices to authenticated;
grant select, insert, update, delete on table public.email_prices to service_role;

alter table public.email_prices enable row level security;

create policy "Email prices are viewable by signed-in users"
  on public.email_prices
  for select
  to authenticated
  using (true);

create trigger set_email_prices_timestamps
  before update on public.email_prices
  for each row execute function kit.set_timestamps();

insert into public.email_prices (mail_type, credits_per_recipient, included_bytes, step_bytes, credits_per_step)
values
  ('custom', 1, 102400, 102400, 1),
  ('template', 1, 102400, 102400, 1)
on conflict (mail_type) do nothing;

/*
 * Function: public.email_price(p_recipients, p_content, p_mail_type)
 *
 * What reserve_email would charge for this mail now, from the same
 * arguments, so a client can show the price before sending. Raises http_422
 * for a mail type without a price and for a mail without recipients.
 * Content is measured in UTF-8 bytes, a missing one as empty. Runs as the
 * caller, who can read the prices anyway.
 */
create or replace function public.email_price(
  p_recipients text[],
  p_content text,
  p_mail_type text
)
returns integer
language plpgsql
stable
set search_path = ''
as $$
declare
  price public.email_prices;
  recipient_count integer := coalesce(cardinality(p_recipients), 0);
  extra_steps integer;
begin
  select *
  into price
  from public.email_prices email_price
  where email_price.mail_type = p_mail_type;

  if not found then
    raise exception 'http_422: Unknown mail type: use custom or template';
  end if;

  if recipient_count < 1 then
    raise exception 'http_422: An email needs at least one recipient';
  end if;

  extra_steps := ceil(
    greatest(coalesce(octet_length(p_content), 0) - price.included_bytes, 0)::numeric / price.step_bytes
  )::integer;

  return recipient_count * (price.credits_per_recipient + extra_steps * price.credits_per_step);
end;
$$;

comment on function public.email_price(text[], text, text) is 'Credits reserve_email charges for a mail with these recipients, content and type, at today''s prices.';

revoke all on function public.email_price(text[], text, text) from public, anon, authenticated, service_role;
grant execute on function public.email_price(text[], text, text) to authenticated, service_role;
