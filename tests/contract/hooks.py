"""schemathesis hooks for `stack contract` (loaded through SCHEMATHESIS_HOOKS).

`Idempotency-Key` (send-email, ticket-intake) makes a request's answer
depend on the requests before it: the same key with other fields is a 422,
as the document declares. schemathesis draws keys from a small space ("0",
"00", ...) and reuses them across unrelated test cases, so a schema-valid
mail would be refused for a key an earlier case spent. Every schema-valid
case gets a key of its own; cases meant to be invalid keep theirs (the
key may be what is invalid about them).
"""

import uuid

import schemathesis


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    for name in list(headers):
        if name.lower() == "idempotency-key" and positive:
            headers[name] = f"contract-{uuid.uuid4()}"
    return None
