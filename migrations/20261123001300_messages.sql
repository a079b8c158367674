/*
 * Messages: the conversation on a ticket.
 *
 * A message belongs to the account that owns its ticket. Members of that
 * account read the whole conversation and add support replies in their own
 * name; the customer's messages come in through trusted server code
 * (service_role). Messages are a record of what was said: nobody changes or
 * deletes one through the API (they go when their ticket does).
 */

/*
 * Type: public.message_author
 */
create type public.message_author as enum ('support', 'customer');

comment on type public.message_author is 'Who wrote a message: the support team or the customer.';

/*
 * Table: public.messages
 */
create table if not exists public.messages (
  id uuid primary key default gen_random_uuid(),
  ticket_id uuid not null references public.tickets (id) on delete cascade,
  author public.message_author not null,
  author_account_id uuid references public.accounts (id) on delete set null,
  content varchar(5000) not null
    constraint messages_content_not_blank check (btrim(content) <> ''),
  attachment_url varchar(500),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.messages is 'Messages on a ticket, from support or the customer. Members of the ticket''s account read them and add support replies; they are never edited through the API.';
comment on column public.messages.ticket_id is 'The ticket the message belongs to.';
comment on column public.messages.author is 'Whether support or the customer wrote the message.';
comment on column public.messages.author_account_id is 'For support replies, the personal account (i.e. the user) who wrote it; null for customer messages.';
comment on column public.messages.content is 'The message text.';
comment on column public.messages.attachment_url is 'Location of a file attached to the message, if any.';

create index if not exists ix_messages_ticket_id on public.messages (ticket_id);

-- Members read and reply. A reply may name its id (so an attachment can be
-- uploaded under it first) but not its timestamps: the conversation's order
-- is the database's, not the client's. No update or delete for anyone but
-- service_role.
revoke all on table public.messages from public, anon, authenticated, service_role;
grant select on table public.messages to authenticated;
grant insert (id, ticket_id, author, author_account_id, content, attachment_url)
  on table public.messages to authenticated;
grant select, insert, update, delete on table public.messages to service_role;

alter table public.messages enable row level security;

/*
 * Function: public.has_role_on_ticket_account(ticket_id)
 *
 * True when the signed-in user is a member of the account that owns the
 * ticket. The message policies ask this for every row. It runs as the
 * caller: the tickets it can see are already limited by the tickets read
 * policy to those of the caller's accounts, which is the question asked, so
 * it needs no privileges of its own and reveals nothing.
 */
create or replace function public.has_role_on_ticket_account(ticket_id uuid)
returns boolean
language sql
stable
set search_path = ''
as $$
  select exists (
    select 1
    from public.tickets ticket
    where ticket.id = has_role_on_ticket_account.ticket_id
      and public.has_role_on_account(ticket.account_id)
  );
$$;

comment on function public.has_role_on_ticket_account(uuid) is 'True when the signed-in user is a member of the account that owns the ticket.';

revoke all on function public.has_role_on_ticket_account(uuid) from public, anon, authenticated, service_role;
grant execute on function public.has_role_on_ticket_account(uuid) to authenticated, service_role;

create policy "Messages are viewable by members of the ticket's account"
  on public.messages
  for select
  to authenticated
  using (public.has_role_on_ticket_account(ticket_id));

-- A member replies as support and in their own name, so a reply can
-- neither pass for the customer nor for a colleague.
create policy "Support replies can be added by members in their own name"
  on public.messages
  for insert
  to authenticated
  with check (
    author = 'support'::public.message_author
    and author_account_id = (select auth.uid())
    and public.has_role_on_ticket_account(ticket_id)
  );

create trigger set_messages_timestamps
  before update on public.messages
  for each row execute function kit.set_timestamps();
