/*
 * Function: public.email_price(p_recipients, p_content, p_mail_type, p_html)
 *
 * Replaces email_price(p_recipients, p_content, p_mail_type), which priced
 * only p_content: the Worker passed the text body there and nothing of the
 * html, so a mail with a one-character text and 100,000 characters of html
 * cost what a one-character mail costs. The content priced is now what is
 * sent: p_content (the text body, or a template's variables) plus p_html
 * (the HTML body), in UTF-8 bytes, a missing one as empty. The table of
 * prices (public.email_prices) is unchanged: per recipient,
 * credits_per_recipient plus credits_per_step for each started step_bytes
 * beyond included_bytes (1, and 1 per started 100 KiB past the first
 * 100 KiB, as shipped).
 *
 * PostgREST callers that send only p_recipients, p_content and p_mail_type
 * keep working (p_html defaults to null). Runs as the caller, who can read
 * the prices anyway. Raises http_422 for a mail type without a price and
 * for a mail without recipients.
 */
drop function if exists public.email_price(text[], text, text);

create or replace function public.email_price(
  p_recipients text[],
  p_content text,
  p_mail_type text,
  p_html text default null
)
returns integer
language plpgsql
stable
set search_path = ''
as $$
declare
  price public.email_prices;
  recipient_count integer := coalesce(cardinality(p_recipients), 0);
  content_bytes bigint := coalesce(octet_length(p_content), 0)::bigint + coalesce(octet_length(p_html), 0);
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

  extra_steps := ceil(greatest(content_bytes - price.included_bytes, 0)::numeric / price.step_bytes)::integer;

  return recipient_count * (price.credits_per_recipient + extra_steps * price.credits_per_step);
end;
$$;

comment on function public.email_price(text[], text, text, text) is 'Credits reserve_email charges for a mail with these recipients, type and content (text or template variables, plus html), at today''s prices.';

revoke all on function public.email_price(text[], text, text, text) from public, anon, authenticated, service_role;
grant execute on function public.email_price(text[], text, text, text) to authenticated, service_role;
