//! The end-to-end suite: one stack (PostgreSQL, PostgREST, every function's
//! wasm in workerd) for all cases. Each function's issue adds a module.

mod foundation;

use edge_e2e::{Case, CaseFuture, World};
use foundation::db;

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
    edge_e2e::run(
        edge_stack::StackOptions::ephemeral(),
        cases![
            foundation::health_answers_on_every_function,
            foundation::deep_health_reaches_postgrest_as_service,
            foundation::routes_answer_under_a_prefix,
            foundation::unknown_routes_are_problem_json_404,
            foundation::wrong_method_is_405_with_allow,
            foundation::oversized_body_is_413_before_any_work,
            foundation::cors_preflight_follows_the_allowlist,
            foundation::request_ids_are_echoed_and_generated,
            db::rls_decides_what_each_mode_sees,
            db::bad_tokens_are_401_before_postgrest,
            db::postgrest_errors_map_to_clear_statuses,
            db::postgrest_down_is_503,
        ],
    )
}
