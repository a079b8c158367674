/*
 * dev/seed.sql: demo data for local runs only.
 *
 * Applied after dev/bootstrap.sql and the migrations, as `postgres`. The ids
 * are fixed: crates/stack mints demo JWTs for these three users, so tokens
 * and rows agree without a lookup. Every demo user's password is `password`.
 *
 *   owner    11111111-1111-4111-8111-111111111111  owner@example.com
 *   member   22222222-2222-4222-8222-222222222222  member@example.com
 *   outsider 33333333-3333-4333-8333-333333333333  outsider@example.com
 *   team     aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa  'Acme Support' (acme)
 *            owner as 'owner', member as 'member', outsider not a member
 *
 * Personal accounts are not inserted here: the sign-up trigger creates them
 * (id = user id), exactly as it will for real users. Re-running is harmless.
 */

-- Shaped like the rows GoTrue writes for a confirmed email sign-up (empty
-- strings, not nulls, in the token columns: GoTrue cannot scan nulls there).
insert into auth.users (
  instance_id,
  id,
  aud,
  role,
  email,
  encrypted_password,
  email_confirmed_at,
  confirmation_token,
  recovery_token,
  email_change_token_new,
  email_change,
  raw_app_meta_data,
  raw_user_meta_data,
  created_at,
  updated_at
)
select
  '00000000-0000-0000-0000-000000000000',
  demo.id,
  'authenticated',
  'authenticated',
  demo.email,
  extensions.crypt('password', extensions.gen_salt('bf')),
  now(),
  '',
  '',
  '',
  '',
  '{"provider": "email", "providers": ["email"]}'::jsonb,
  jsonb_build_object('name', demo.name),
  now(),
  now()
from (
  values
    ('11111111-1111-4111-8111-111111111111'::uuid, 'owner@example.com', 'Olivia Owner'),
    ('22222222-2222-4222-8222-222222222222'::uuid, 'member@example.com', 'Max Member'),
    ('33333333-3333-4333-8333-333333333333'::uuid, 'outsider@example.com', 'Oscar Outsider')
) as demo (id, email, name)
on conflict (id) do nothing;

insert into public.accounts (
  id,
  primary_owner_user_id,
  name,
  slug,
  email,
  is_personal_account,
  created_by,
  updated_by
)
values (
  'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
  '11111111-1111-4111-8111-111111111111',
  'Acme Support',
  'acme',
  'support@acme.example',
  false,
  '11111111-1111-4111-8111-111111111111',
  '11111111-1111-4111-8111-111111111111'
)
on conflict (id) do nothing;

insert into public.accounts_memberships (user_id, account_id, account_role, created_by, updated_by)
values
  ('11111111-1111-4111-8111-111111111111', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'owner',
   '11111111-1111-4111-8111-111111111111', '11111111-1111-4111-8111-111111111111'),
  ('22222222-2222-4222-8222-222222222222', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'member',
   '11111111-1111-4111-8111-111111111111', '11111111-1111-4111-8111-111111111111')
on conflict (user_id, account_id) do nothing;

-- Ticket intakes (the public support form). Acme's is open to the local
-- demo page on port 3000 and shows the built-in thank-you page; the
-- outsider's personal account has one that is switched off, to try the 404.
insert into public.ticket_intakes (account_id, enabled, intake_key, allowed_origins, thank_you_url)
values
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', true, 'acme',
   '{http://localhost:3000,http://127.0.0.1:3000}', null),
  ('33333333-3333-4333-8333-333333333333', false, 'closed-shop',
   '{}', null)
on conflict (account_id) do nothing;

-- Message attachments. A ticket on Acme with the customer's question and
-- Max Member's reply, which carries one file, registered in
-- public.message_attachments and present in storage.objects as Supabase
-- Storage would leave it after the upload. The bytes live in the store, not
-- in Postgres: the local stack's S3-compatible server (crates/stack/src/s3.rs)
-- holds them, so `scripts/dev`'s signed download URL returns them.
--
--   ticket      bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb  TK-ACME0001
--   message     cccccccc-cccc-4ccc-8ccc-cccccccccccc  the customer's question
--   reply       eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee  Max Member's answer
--   attachment  dddddddd-dddd-4ddd-8ddd-dddddddddddd  hello.txt, on the reply, at
--     aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa/eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee/ffffffff-ffff-4fff-8fff-ffffffffffff/hello.txt
insert into public.tickets (id, account_id, reference, title, category, priority, customer_email, customer_name)
values (
  'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb',
  'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
  'TK-ACME0001',
  'The greeting file will not open',
  'general',
  'medium',
  'customer@example.com',
  'Casey Customer'
)
on conflict (id) do nothing;

insert into public.messages (id, ticket_id, author, author_account_id, content)
values
  ('cccccccc-cccc-4ccc-8ccc-cccccccccccc', 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'customer', null,
   'Could you send me the greeting file again? The link in your last mail has expired.'),
  ('eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee', 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'support',
   '22222222-2222-4222-8222-222222222222', 'Here it is, attached to this reply.')
on conflict (id) do nothing;

insert into public.message_attachments (id, message_id, object_path, file_name, content_type, size_bytes, created_by)
values (
  'dddddddd-dddd-4ddd-8ddd-dddddddddddd',
  'eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee',
  'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa/eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee/ffffffff-ffff-4fff-8fff-ffffffffffff/hello.txt',
  'hello.txt',
  'text/plain',
  13,
  '22222222-2222-4222-8222-222222222222'
)
on conflict (id) do nothing;

-- The object's metadata is what Storage records for the 13 bytes
-- "hello, world\n" uploaded by Max Member.
insert into storage.objects (bucket_id, name, owner, owner_id, metadata)
values (
  'attachments',
  'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa/eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee/ffffffff-ffff-4fff-8fff-ffffffffffff/hello.txt',
  '22222222-2222-4222-8222-222222222222',
  '22222222-2222-4222-8222-222222222222',
  jsonb_build_object(
    'eTag', '"22c3683b094136c3398391ae71b20f04"',
    'size', 13,
    'mimetype', 'text/plain',
    'cacheControl', 'max-age=3600',
    'lastModified', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'contentLength', 13,
    'httpStatusCode', 200
  )
)
on conflict (bucket_id, name) do nothing;

-- Credits for sending email. Every demo user got a profile with 300
-- credits from the sign-up trigger; the outsider is left with 1 (one
-- single-recipient mail, then 402), through the ledger like any change.
-- The reference makes a re-run a no-op.
select public.grant_credits(
  '33333333-3333-4333-8333-333333333333',
  -299,
  'manual_adjustment',
  'seed:outsider-low-balance'
);

-- The shipped sending policy is templates only (public.email_settings);
-- locally the demo users may also send their own subject and body, so the
-- printed curl line works. The outsider stays on the default.
insert into public.email_sender_settings (user_id, custom_content_allowed, note)
values
  ('11111111-1111-4111-8111-111111111111', true, 'seed: local demo'),
  ('22222222-2222-4222-8222-222222222222', true, 'seed: local demo')
on conflict (user_id) do nothing;

-- Which prices give credits, with the ids the documented payloads in
-- crates/billing/fixtures use, so replaying them locally grants credits: a
-- 100-credit pack bought once, and a plan granting 500 each paid period.
insert into public.billing_credit_prices (provider, price_id, credits, grant_on)
values
  ('stripe', 'price_credits_100', 100, 'purchase'),
  ('stripe', 'price_pro_monthly', 500, 'renewal'),
  ('lemon-squeezy', '22222', 100, 'purchase'),
  ('lemon-squeezy', '11111', 500, 'renewal'),
  ('paddle', 'pri_01k4c7credits1000000000000', 100, 'purchase'),
  ('paddle', 'pri_01k4c7promonthly0000000000', 500, 'renewal')
on conflict (provider, price_id) do nothing;
