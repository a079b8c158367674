//! The end-to-end suite: one stack (PostgreSQL, PostgREST, every function's
//! wasm in workerd) for all cases. Each function's issue adds a module.

mod attachments;
mod billing;
mod faults;
mod foundation;
mod intake;
mod jwt;
mod load;
mod mail;
mod thirdparty;

use attachments::s3;
use edge_e2e::{Case, CaseFuture, World};
use foundation::db;
use intake::browser;

/// `(name, case)` pairs from plain `async fn(&World) -> anyhow::Result<()>`s.
macro_rules! cases {
    ($($module:ident :: $case:ident),* $(,)?) => {
        vec![$((
            concat!(stringify!($module), "::", stringify!($case)),
            { fn run(world: &World) -> CaseFuture<'_> { Box::pin($module::$case(world)) } run as Case },
        )),*]
    };
}

fn main() {
    let hcaptcha_verify_url = format!("{{captcha}}{}", edge_stack::stubs::HCAPTCHA_SITEVERIFY_PATH);
    // A PostgREST that takes connections and never answers: a listener
    // nobody accepts on (the kernel completes the handshakes), alive until
    // the run exits.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the silent PostgREST");
    let silent_url = format!("http://{}", silent.local_addr().expect("its address"));
    let silent_timeout = faults::TIMEOUT.as_millis().to_string();
    let mut options = edge_stack::StackOptions::ephemeral();
    for (function, variant) in faults::SILENT {
        options = options.variant(
            variant,
            function,
            &[
                ("POSTGREST_URL", silent_url.as_str()),
                ("POSTGREST_TIMEOUT_MS", silent_timeout.as_str()),
            ],
        );
    }
    // Every third party failing in each way: instances of their own for a
    // refused connection and for each JWKS fault (see `thirdparty`).
    let options =
        thirdparty::variants()
            .into_iter()
            .fold(options, |options, (name, build, bindings)| {
                let bindings: Vec<(&str, &str)> =
                    bindings.iter().map(|(k, v)| (*k, v.as_str())).collect();
                options.variant(&name, build, &bindings)
            });
    edge_e2e::run(
        options
            // The provider stand-in's `[hang]` must outlast this.
            .binding("EMAIL_TIMEOUT_MS", thirdparty::TIMEOUT_MS)
            // ...and the captcha stand-in's `slow` tokens this.
            .binding("CAPTCHA_TIMEOUT_MS", thirdparty::TIMEOUT_MS)
            // The load cases run two at a time on two shared cores, and
            // queue thousands of requests on PostgREST's pool of 10: some
            // wait longer than the 10 s default. The bound itself is the
            // fault cases' (1.5 s, on the silent variants and their stack).
            .binding("POSTGREST_TIMEOUT_MS", "30000")
            // ticket-intake again, with PostgREST unreachable.
            .variant(
                "ticket-intake-nodb",
                "ticket-intake",
                &[("POSTGREST_URL", "http://127.0.0.1:9")],
            )
            // ticket-intake again, verifying with hCaptcha (its stand-in).
            .variant(
                "ticket-intake-hcaptcha",
                "ticket-intake",
                &[
                    ("CAPTCHA_PROVIDER", "hcaptcha"),
                    ("CAPTCHA_VERIFY_URL", hcaptcha_verify_url.as_str()),
                ],
            )
            // ticket-intake again, with an unknown captcha provider.
            .variant(
                "ticket-intake-misconfigured",
                "ticket-intake",
                &[("CAPTCHA_PROVIDER", "recaptcha")],
            )
            // send-email again, with a provider timeout a loaded machine's
            // stand-in stays within (the load cases send thousands at once;
            // the suite's 1.5 s is for the stand-in's `[hang]`).
            .variant(
                "send-email-load",
                "send-email",
                &[("EMAIL_TIMEOUT_MS", "30000")],
            )
            // ticket-intake again, with a captcha timeout a loaded machine's
            // stand-in stays within (the spam case sends 5,000 at once).
            .variant(
                "ticket-intake-load",
                "ticket-intake",
                &[("CAPTCHA_TIMEOUT_MS", "30000")],
            )
            // billing-webhook again, with PostgREST unreachable.
            .variant(
                "billing-webhook-nodb",
                "billing-webhook",
                &[("POSTGREST_URL", "http://127.0.0.1:9")],
            )
            // attachment-urls again, taking more than the attachments bucket
            // does, so the store's own refusal shows.
            .variant(
                "attachment-urls-wide",
                "attachment-urls",
                &[
                    ("ATTACHMENT_CONTENT_TYPES", "image/png,image/svg+xml"),
                    ("ATTACHMENT_MAX_BYTES", "52428800"),
                ],
            )
            // send-email again, through the stand-in's Postmark API.
            .variant(
                "send-email-postmark",
                "send-email",
                &[
                    ("EMAIL_PROVIDER", "postmark"),
                    ("EMAIL_API_KEY", edge_stack::stubs::POSTMARK_SERVER_TOKEN),
                ],
            )
            // attachment-urls again, its PostgREST requests counted.
            .counted(attachments::COUNTED, "attachment-urls")
            // attachment-urls again, presigning for a local S3 server (s3s-fs).
            .with_s3()
            .variant(
                "attachment-urls-s3",
                "attachment-urls",
                &[("ATTACHMENT_SIGNER", "s3")],
            )
            // send-email's Cron Trigger, fired on request (the reconciler).
            .cron_trigger(mail::CRON, "send-email")
            // send-email again, on asymmetric keys only: no HS256 secret.
            .variant(
                jwt::ASYMMETRIC,
                "send-email",
                &[("SUPABASE_JWT_SECRET", "")],
            )
            // send-email again, requiring the issuer the stack's tokens carry.
            .variant(
                jwt::WITH_ISSUER,
                "send-email",
                &[("JWT_ISSUER", edge_stack::tokens::USER_TOKEN_ISSUER)],
            ),
        cases![
            foundation::health_answers_on_every_function,
            foundation::deep_health_reaches_postgrest_as_service,
            foundation::routes_answer_under_a_prefix,
            foundation::unknown_routes_are_problem_json_404,
            foundation::wrong_method_is_405_with_allow,
            foundation::methods_the_worker_crate_does_not_know_are_405,
            foundation::oversized_body_is_413_before_any_work,
            foundation::a_huge_body_is_413_without_being_read_whole,
            foundation::cors_preflight_follows_the_allowlist,
            foundation::request_ids_are_echoed_and_generated,
            foundation::es256_tokens_are_verified_in_workerd,
            foundation::a_misconfigured_function_is_a_clear_500,
            db::rls_decides_what_each_mode_sees,
            db::es256_tokens_work_with_the_verifier_and_postgrest,
            db::bad_tokens_are_401_before_postgrest,
            db::postgrest_errors_map_to_clear_statuses,
            db::postgrest_down_is_503,
            intake::json_submission_creates_the_ticket_and_its_first_message,
            intake::form_posts_redirect_to_a_thank_you_page,
            intake::captcha_failures_are_refused_and_write_nothing,
            intake::a_captcha_token_is_never_accepted_twice,
            intake::a_filled_honeypot_gets_success_and_no_row,
            intake::the_per_ip_rate_limit_answers_429,
            intake::origins_are_checked_against_the_account,
            intake::unknown_and_disabled_intakes_are_404,
            intake::invalid_fields_are_one_422_before_anything_else,
            intake::an_idempotency_key_replays_the_same_ticket,
            intake::postgrest_down_is_503_and_the_captcha_is_kept,
            intake::a_burst_from_one_address_leaves_the_form_open_to_others,
            intake::the_accounts_categories_and_priorities_are_field_errors_before_the_captcha,
            intake::form_redirects_stay_on_this_function,
            browser::the_example_form_works_in_a_real_browser,
            browser::a_page_on_an_allowed_origin_reads_every_answer_with_fetch,
            mail::a_send_charges_logs_and_reaches_the_provider,
            mail::without_a_user_token_it_is_401,
            mail::too_few_credits_is_402_and_nothing_is_sent,
            mail::the_html_is_priced_and_logged_with_the_text,
            mail::ambiguous_outcomes_stay_charged_until_confirmed,
            mail::certain_refusals_are_refunded_exactly_once,
            mail::postmark_partial_deliveries_stay_charged,
            mail::only_templates_unless_the_operator_allows_more,
            mail::daily_limits_hold_in_the_database,
            mail::a_repeated_idempotency_key_charges_and_sends_once,
            mail::nobody_can_charge_another_user,
            mail::concurrent_sends_never_overdraw,
            mail::a_retry_while_the_first_is_in_flight_is_409,
            mail::the_reconciler_settles_stuck_mails_once,
            mail::deliveries_bounces_and_complaints_reach_the_mail_once,
            attachments::signing_any_number_of_ids_is_one_postgrest_request,
            attachments::members_get_signed_urls_others_get_404s,
            attachments::upload_urls_insert_the_row_only_where_rls_allows,
            attachments::traversal_and_oversized_uploads_are_refused,
            attachments::the_store_refuses_what_the_function_refuses,
            attachments::every_upload_the_function_takes_by_default_the_store_takes,
            attachments::attachments_go_only_on_messages_the_caller_wrote,
            s3::signed_urls_upload_to_and_download_from_the_store,
            s3::the_store_refuses_tampered_urls,
            s3::the_seeded_attachment_downloads_from_the_local_store,
            s3::the_store_refuses_expired_urls,
            billing::bad_signatures_are_400_and_write_nothing,
            billing::a_stripe_subscription_lives_and_ends_in_the_right_rows,
            billing::a_lemon_squeezy_subscription_lives_and_ends_in_the_right_rows,
            billing::a_paddle_subscription_lives_and_ends_in_the_right_rows,
            billing::the_same_event_twice_or_ten_times_at_once_applies_once,
            billing::events_out_of_order_end_in_the_newest_state,
            billing::credit_packs_grant_credits_once_even_when_redelivered,
            billing::with_the_database_down_it_is_503_then_the_retry_applies_once,
            billing::unknown_events_are_recorded_and_ignored,
            billing::an_event_that_cannot_be_applied_yet_is_422_then_retried,
            billing::account_members_read_billing_rows_others_do_not,
            billing::stripe_credits_follow_the_money_in_every_api_version,
            billing::paddle_credits_follow_the_money,
            billing::lemon_squeezy_credits_follow_the_money,
            load::two_thousand_sends_for_three_hundred_credits_send_three_hundred,
            load::five_hundred_refused_sends_are_each_refunded_once,
            load::a_thousand_shuffled_deliveries_apply_each_event_once,
            load::five_thousand_submissions_from_one_address_make_twenty_tickets,
            faults::a_silent_postgrest_is_503_within_the_bound_on_every_route,
            faults::postgrest_killed_and_postgres_restarted_under_load_keep_every_guarantee,
            jwt::forged_and_unsigned_tokens_are_401_and_write_nothing,
            jwt::tokens_out_of_time_or_for_others_are_401_and_write_nothing,
            jwt::a_wrong_issuer_is_401_where_one_is_configured,
            jwt::service_role_and_anonymous_tokens_never_pass_as_users,
            jwt::truncated_huge_and_non_base64_tokens_are_401,
            jwt::rs256_tokens_are_verified_through_webcrypto_end_to_end,
            thirdparty::a_failing_captcha_provider_is_503_and_writes_nothing,
            thirdparty::a_failing_email_provider_keeps_the_charge_and_the_ledger,
            thirdparty::failing_storage_signs_nothing_and_leaves_no_row,
            thirdparty::a_failing_jwks_is_503_and_never_lets_a_token_in,
            thirdparty::a_jwks_failing_later_keeps_its_keys_for_their_lifetime,
        ],
    )
}
