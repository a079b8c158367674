/*
 * User mails: the log keeps everything that is sent.
 *
 * - `html`: the HTML body. Until now `content` held the text body, or the
 *   HTML only when no text was sent, so a mail with both lost its HTML from
 *   the log and from the price. From now on `content` is the text body
 *   ('' when there is none) or a template's variables, and `html` the HTML
 *   body; the price counts both. Mails logged before this migration keep
 *   an HTML-only body in `content` and have no `html`. Like every column
 *   but the outcome, it is fixed at reservation (kit.guard_user_mail_update).
 * - `subject` may be null for a template mail: a template brings its own,
 *   and where the operator allows only templates (public.email_settings) a
 *   sender's subject is refused, since a subject is raw content too. A
 *   custom mail still needs one.
 */

alter table public.user_mails
  add column if not exists html text
    constraint user_mails_html_size check (octet_length(html) <= 1048576);

alter table public.user_mails
  alter column subject drop not null;

alter table public.user_mails
  add constraint user_mails_custom_has_subject check (mail_type <> 'custom' or subject is not null),
  add constraint user_mails_template_has_no_html check (mail_type <> 'template' or html is null);

comment on column public.user_mails.subject is 'Subject line as sent: one line, 1 to 998 characters. Null for a template mail that uses its template''s subject.';
comment on column public.user_mails.content is 'The text body as sent ('''' without one), or for a template the variables as JSON; at most 1 MiB. Priced with html. (Before 2026-12-01 an HTML-only mail kept its HTML here.)';
comment on column public.user_mails.html is 'The HTML body as sent, for custom mails; at most 1 MiB. Priced with content.';
