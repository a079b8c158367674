/*
 * Function: public.can_read_message(message_id)
 *
 * True when the signed-in user may read the message: they are a member of
 * the account that owns the message's ticket. Attachments (their rows and
 * their files in Storage) are readable exactly when their message is, so
 * the policies on public.message_attachments and storage.objects ask this.
 *
 * It runs as the caller, like has_role_on_ticket_account, which it builds
 * on: the messages the caller can see are already those of their accounts,
 * so it needs no privileges of its own and cannot be used to probe other
 * accounts' messages. The explicit membership check keeps the answer the
 * same for callers that bypass RLS: service_role has no user, so it is false
 * there (service_role reads attachments through its own grants anyway).
 */
create or replace function public.can_read_message(message_id uuid)
returns boolean
language sql
stable
set search_path = ''
as $$
  select exists (
    select 1
    from public.messages message
    where message.id = can_read_message.message_id
      and public.has_role_on_ticket_account(message.ticket_id)
  );
$$;

comment on function public.can_read_message(uuid) is 'True when the signed-in user may read the message: a member of the account that owns its ticket.';

revoke all on function public.can_read_message(uuid) from public, anon, authenticated, service_role;
grant execute on function public.can_read_message(uuid) to authenticated, service_role;
