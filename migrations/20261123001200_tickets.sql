/*
 * Tickets: the support requests an account receives.
 *
 * The account that received a ticket owns it. Every member of that account
 * reads it; changing or deleting it takes tickets.update / tickets.delete,
 * which only the owner role grants. Tickets are created by trusted server
 * code (service_role), today only the public intake form
 * (public.intake_submit); signed-in users do not create them through the API.
 */

/*
 * Type: public.ticket_status
 */
create type public.ticket_status as enum ('open', 'closed', 'resolved', 'in_progress');

comment on type public.ticket_status is 'Where a ticket stands: open, in_progress, resolved or closed.';

/*
 * Type: public.ticket_priority
 */
create type public.ticket_priority as enum ('low', 'medium', 'high');

comment on type public.ticket_priority is 'How urgent a ticket is: low, medium or high.';

/*
 * Table: public.tickets
 *
 * `reference` is what the customer sees and quotes back ("TK-7QH2M9XD"):
 * short, unguessable enough to not reveal ticket volumes, and written in
 * Crockford's base32 alphabet (no I, L, O or U), so it survives being read
 * aloud or typed from a screenshot. A trigger fills it in when the insert
 * gives none, since a column default could not retry on a collision.
 *
 * assigned_to, resolved_by and closed_by point at accounts, i.e. at a
 * user's personal account (whose id is the user's id).
 */
create table if not exists public.tickets (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete cascade,
  reference text not null
    constraint tickets_reference_key unique
    constraint tickets_reference_format check (reference ~ '^TK-[0-9A-HJKMNP-TV-Z]{8}$'),
  title varchar(255) not null
    constraint tickets_title_not_blank check (btrim(title) <> ''),
  category varchar(100) not null default 'general'
    constraint tickets_category_not_blank check (btrim(category) <> ''),
  assigned_to uuid references public.accounts (id) on delete set null,
  priority public.ticket_priority not null default 'medium',
  status public.ticket_status not null default 'open',
  customer_email varchar(255)
    constraint tickets_customer_email_format check (customer_email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
  customer_name varchar(255),
  resolution text,
  resolved_at timestamptz,
  resolved_by uuid references public.accounts (id) on delete set null,
  closed_at timestamptz,
  closed_by uuid references public.accounts (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.tickets is 'Support requests received by an account. Members read them; tickets.update / tickets.delete are needed to change or delete them.';
comment on column public.tickets.account_id is 'The account that received the ticket and owns it.';
comment on column public.tickets.reference is 'Public reference shown to the customer: TK- and 8 characters of Crockford base32. Generated when not given.';
comment on column public.tickets.title is 'Subject line, as the customer wrote it.';
comment on column public.tickets.category is 'Free-form category, e.g. billing; the intake restricts it per account.';
comment on column public.tickets.assigned_to is 'The personal account (i.e. the user) working on the ticket, if any.';
comment on column public.tickets.priority is 'How urgent the ticket is.';
comment on column public.tickets.status is 'Where the ticket stands.';
comment on column public.tickets.customer_email is 'Address of the customer who opened the ticket; replies go there.';
comment on column public.tickets.customer_name is 'Name the customer gave, if any.';
comment on column public.tickets.resolution is 'How the ticket was resolved, for the record.';
comment on column public.tickets.resolved_at is 'When the ticket was resolved.';
comment on column public.tickets.resolved_by is 'The personal account (i.e. the user) who resolved the ticket.';
comment on column public.tickets.closed_at is 'When the ticket was closed.';
comment on column public.tickets.closed_by is 'The personal account (i.e. the user) who closed the ticket.';

create index if not exists ix_tickets_account_id on public.tickets (account_id);
create index if not exists ix_tickets_assigned_to on public.tickets (assigned_to);

-- Members read; holders of tickets.update change what a support agent works
-- on, never which account owns the ticket, its reference or what the
-- customer submitted; holders of tickets.delete delete. Creating tickets is
-- for service_role.
revoke all on table public.tickets from public, anon, authenticated, service_role;
grant select, delete on table public.tickets to authenticated;
grant update (
  title,
  category,
  assigned_to,
  priority,
  status,
  resolution,
  resolved_at,
  resolved_by,
  closed_at,
  closed_by
) on table public.tickets to authenticated;
grant select, insert, update, delete on table public.tickets to service_role;

alter table public.tickets enable row level security;

create policy "Tickets are viewable by members of their account"
  on public.tickets
  for select
  to authenticated
  using (public.has_role_on_account(account_id));

create policy "Tickets are updatable by members with tickets.update"
  on public.tickets
  for update
  to authenticated
  using (public.has_permission((select auth.uid()), account_id, 'tickets.update'::public.app_permissions))
  with check (public.has_permission((select auth.uid()), account_id, 'tickets.update'::public.app_permissions));

create policy "Tickets are deletable by members with tickets.delete"
  on public.tickets
  for delete
  to authenticated
  using (public.has_permission((select auth.uid()), account_id, 'tickets.delete'::public.app_permissions));

/*
 * Function: kit.set_ticket_reference()
 *
 * BEFORE INSERT trigger: when the insert gives no reference, picks a random
 * one that is not taken. 40 random bits (the first six bytes of a v4 UUID,
 * which are all random, base64-encoded and folded onto the 32 letters two by
 * two, so every letter stays equally likely) make a collision rare enough
 * that a few attempts always suffice; the unique constraint still settles a
 * race between two inserts drawing the same value.
 */
create or replace function kit.set_ticket_reference()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  base64_alphabet constant text := 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  crockford_alphabet constant text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  candidate text;
begin
  if new.reference is not null then
    return new;
  end if;

  for attempt in 1..5 loop
    candidate := 'TK-' || translate(
      encode(substr(uuid_send(gen_random_uuid()), 1, 6), 'base64'),
      base64_alphabet,
      crockford_alphabet || crockford_alphabet
    );
    if not exists (select 1 from public.tickets ticket where ticket.reference = candidate) then
      new.reference := candidate;
      return new;
    end if;
  end loop;

  raise exception 'could not find a free ticket reference'
    using errcode = 'unique_violation',
          table = 'tickets',
          schema = 'public';
end;
$$;

comment on function kit.set_ticket_reference() is 'BEFORE INSERT trigger on tickets: generates a free TK-XXXXXXXX reference when none is given.';

revoke all on function kit.set_ticket_reference() from public, anon, authenticated, service_role;

create trigger set_ticket_reference
  before insert on public.tickets
  for each row execute function kit.set_ticket_reference();

create trigger set_tickets_timestamps
  before update on public.tickets
  for each row execute function kit.set_timestamps();
