//! The OpenAPI 3.1 document served at `/v1/openapi.json`. [`ROUTES`] lists every route the
//! router serves; a test checks that the document and the list agree and that every
//! listed route answers on a live hub.

use serde_json::{Value, json};

/// Every (method, path) the API serves, in OpenAPI path syntax.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/openapi.json"),
    ("post", "/v1/enrol"),
    ("get", "/v1/agent/poll"),
    ("post", "/v1/agent/ops/ack"),
    ("post", "/v1/agent/report"),
    ("get", "/v1/hosts"),
    ("get", "/v1/hosts/{host}/desired"),
    ("put", "/v1/hosts/{host}/desired"),
    ("get", "/v1/hosts/{host}/desired/history"),
    ("get", "/v1/hosts/{host}/desired/{revision}"),
    ("post", "/v1/hosts/{host}/ops"),
    ("get", "/v1/hosts/{host}/ops"),
    ("get", "/v1/hosts/{host}/report"),
    ("get", "/v1/hosts/{host}/audit"),
    ("get", "/v1/agent/audit/head"),
    ("post", "/v1/agent/audit"),
    ("get", "/metrics"),
    ("put", "/v1/ledger"),
    ("get", "/v1/ledger"),
];

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn body(name: &str) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema_ref(name) } } })
}

fn errors() -> Value {
    let e = |d: &str| json!({ "description": d, "content": { "application/json": { "schema": schema_ref("ApiError") } } });
    json!({
        "400": e("malformed request"),
        "401": e("missing, malformed, unknown or revoked token"),
        "404": e("not found"),
        "413": e("body too large"),
        "422": e("well-formed but refused (every problem listed)"),
    })
}

fn op(summary: &str, security: &str, responses: Value) -> Value {
    let mut all = errors();
    if let (Some(all), Some(extra)) = (all.as_object_mut(), responses.as_object()) {
        for (k, v) in extra {
            all.insert(k.clone(), v.clone());
        }
    }
    let mut o = json!({ "summary": summary, "responses": all });
    if !security.is_empty() {
        o["security"] = json!([{ security: [] }]);
    }
    o
}

/// `base` with the keys of `extra` added.
fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

fn host_param() -> Value {
    json!({ "name": "host", "in": "path", "required": true, "schema": { "type": "string" } })
}

/// The document.
pub fn document() -> Value {
    let string = json!({ "type": "string" });
    let uint = json!({ "type": "integer", "minimum": 0 });
    let opt_uint = json!({ "type": ["integer", "null"], "minimum": 0 });
    let opt_string = json!({ "type": ["string", "null"] });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let object = |props: Value, required: &[&str]| json!({ "type": "object", "additionalProperties": false, "properties": props, "required": required });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "castellan hub",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Desired state per host, pushed to agents by long-poll; signed ops relayed (never made) by the hub; agent reports. Destructive actions are decided by each host against its own signers."
        },
        "paths": {
            "/v1/openapi.json": { "get": op("this document", "", json!({ "200": ok("the OpenAPI document", json!({ "type": "object" })) })) },
            "/v1/enrol": { "post": with(
                op("redeem a one-time enrolment token for a host credential (rate-limited)", "", json!({
                    "200": ok("the host's credential, shown once", schema_ref("EnrolResponse")),
                    "403": ok("unknown, used, expired or for another host", schema_ref("ApiError")),
                    "429": ok("too many attempts", schema_ref("ApiError")) })),
                json!({ "requestBody": body("EnrolRequest") })) },
            "/v1/agent/poll": { "get": with(
                op("long-poll for a newer desired revision or new ops (host credential)", "host", json!({
                    "200": ok("something new", schema_ref("PollResponse")),
                    "204": { "description": "nothing new before the wait ended" } })),
                json!({ "parameters": [
                    { "name": "revision", "in": "query", "schema": uint, "description": "the revision the agent has" },
                    { "name": "ops", "in": "query", "schema": uint, "description": "the highest op id the agent has taken" },
                    { "name": "wait_ms", "in": "query", "schema": { "type": "integer", "minimum": 0, "maximum": crate::proto::MAX_WAIT_MS }, "description": "how long to wait for something new" }
                ] })) },
            "/v1/agent/ops/ack": { "post": with(
                op("acknowledge ops taken into the agent's inbox", "host", json!({ "204": { "description": "noted" } })),
                json!({ "requestBody": body("OpAck") })) },
            "/v1/agent/report": { "post": with(
                op("report where the host stands", "host", json!({ "204": { "description": "stored" } })),
                json!({ "requestBody": body("AgentReport") })) },
            "/v1/hosts": { "get": op("every host and where it stands (operator)", "operator", json!({
                "200": ok("hosts", json!({ "type": "array", "items": schema_ref("HostStatus") })) })) },
            "/v1/hosts/{host}/desired": {
                "parameters": [host_param()],
                "get": op("the latest desired revision", "operator", json!({ "200": ok("the revision", schema_ref("DesiredRevision")) })),
                "put": with(
                    op("write a desired-state revision, validated with the agent's parser", "operator", json!({
                        "200": ok("the document equals the latest revision: nothing written", schema_ref("PutDesiredResponse")),
                        "201": ok("a new revision", schema_ref("PutDesiredResponse")),
                        "409": ok("based on a revision that is no longer the latest", schema_ref("ApiError")) })),
                    json!({ "requestBody": body("PutDesired") }))
            },
            "/v1/hosts/{host}/desired/history": { "get": with(
                op("revisions, newest first", "operator", json!({ "200": ok("revisions", json!({ "type": "array", "items": schema_ref("RevisionMeta") })) })),
                json!({ "parameters": [host_param(), { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 0, "maximum": 1000 } }] })) },
            "/v1/hosts/{host}/desired/{revision}": { "get": with(
                op("one revision", "operator", json!({ "200": ok("the revision", schema_ref("DesiredRevision")) })),
                json!({ "parameters": [host_param(), { "name": "revision", "in": "path", "required": true, "schema": uint }] })) },
            "/v1/hosts/{host}/ops": {
                "parameters": [host_param()],
                "post": with(
                    op("relay a signed op to the host (which verifies it itself)", "operator", json!({
                        "201": ok("stored for delivery", schema_ref("SubmitOpResponse")) })),
                    json!({ "requestBody": body("SubmitOp") })),
                "get": with(op("ops relayed to the host, oldest first, 1,000 at a time", "operator", json!({
                    "200": ok("ops", json!({ "type": "array", "items": schema_ref("RelayedOpStatus") })) })),
                    json!({ "parameters": [{ "name": "after", "in": "query", "schema": uint, "description": "ops with an id above this" }] }))
            },
            "/v1/ledger": {
                "put": with(
                    op("push the host-service ledger's acceptance report (castellan ledger acceptance), kept as the latest; read-only everywhere", "operator", json!({
                        "201": ok("kept", schema_ref("PutLedgerResponse")),
                        "422": ok("not an acceptance report", schema_ref("ApiError")) })),
                    json!({ "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } } })),
                "get": op("the latest acceptance report, as pushed", "operator", json!({
                    "200": ok("the report", json!({ "type": "object" })),
                    "404": ok("none pushed yet", schema_ref("ApiError")) }))
            },
            "/v1/hosts/{host}/report": { "get": with(
                op("the host's latest report", "operator", json!({ "200": ok("the report", schema_ref("AgentReport")) })),
                json!({ "parameters": [host_param()] })) },
            "/v1/hosts/{host}/audit": { "get": with(
                op("the host's audit chain as the hub verified it, a page at a time, and every problem found in its uploads", "operator", json!({
                    "200": ok("a page", schema_ref("AuditPage")) })),
                json!({ "parameters": [host_param(),
                    { "name": "after", "in": "query", "schema": uint, "description": "records after this seq" },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 0, "maximum": crate::proto::MAX_AUDIT_BATCH } }] })) },
            "/v1/agent/audit/head": { "get": op("the last audit record the hub verified for this host", "host", json!({
                "200": ok("the head (seq 0: none)", schema_ref("AuditHead")) })) },
            "/v1/agent/audit": { "post": with(
                op("upload the next audit records; taken only if they extend the verified head", "host", json!({
                    "200": ok("the verified head now", schema_ref("AuditHead")),
                    "409": ok("a gap, a fork, a rewind or an invalid record (kept as a problem), or a concurrent upload", schema_ref("ApiError")) })),
                json!({ "requestBody": body("AuditUpload") })) },
            "/metrics": { "get": op("Prometheus metrics (OpenMetrics text); an operator token, since they name every host", "operator", json!({
                "200": { "description": "metrics", "content": { "application/openmetrics-text": { "schema": string } } } })) }
        },
        "components": {
            "securitySchemes": {
                "host": { "type": "http", "scheme": "bearer", "description": "a host credential (cst_host_...)" },
                "operator": { "type": "http", "scheme": "bearer", "description": "an operator token (cst_op_...)" }
            },
            "schemas": {
                "ApiError": object(json!({ "error": string, "message": string, "problems": strings }), &["error", "message"]),
                "EnrolRequest": object(json!({ "host": string, "token": string }), &["host", "token"]),
                "EnrolResponse": object(json!({ "host": string, "credential": string }), &["host", "credential"]),
                "PutDesired": object(json!({ "document": string, "based_on": uint }), &["document", "based_on"]),
                "PutDesiredResponse": object(json!({ "host": string, "revision": uint, "changed": { "type": "boolean" } }), &["host", "revision", "changed"]),
                "DesiredRevision": object(json!({ "revision": uint, "document": string, "author": string, "created_at": string }), &["revision", "document", "author", "created_at"]),
                "RevisionMeta": object(json!({ "revision": uint, "author": string, "created_at": string, "sha256": string }), &["revision", "author", "created_at", "sha256"]),
                "OpDelivery": object(json!({ "id": uint, "op": string, "sigs": strings, "submitted_by": string }), &["id", "op", "sigs", "submitted_by"]),
                "PollResponse": object(json!({ "desired": { "oneOf": [schema_ref("DesiredRevision"), { "type": "null" }] }, "ops": { "type": "array", "items": schema_ref("OpDelivery") } }), &["desired", "ops"]),
                "OpAck": object(json!({ "upto": uint }), &["upto"]),
                "SubmitOp": object(json!({ "op": string, "sigs": strings }), &["op", "sigs"]),
                "SubmitOpResponse": object(json!({ "id": uint, "host": string }), &["id", "host"]),
                "RelayedOpStatus": object(json!({ "id": uint, "op": string, "signatures": uint, "submitted_by": string, "submitted_at": string, "delivered_at": opt_string }), &["id", "op", "signatures", "submitted_by", "submitted_at", "delivered_at"]),
                "PendingReport": object(json!({ "name": string, "payload": string, "takes": strings }), &["name", "payload"]),
                "GuestField": object(json!({ "field": string, "desired": string, "actual": string, "matches": { "type": "boolean" } }), &["field", "desired", "actual", "matches"]),
                "GuestReport": object(json!({ "target": string, "fields": { "type": "array", "items": schema_ref("GuestField") }, "error": opt_string, "busy": { "type": "boolean" } }), &["target", "fields"]),
                "AgentReport": object(json!({ "agent_version": string, "applied_revision": opt_uint, "converged": { "type": "boolean" }, "plan": strings, "pending": { "type": "array", "items": schema_ref("PendingReport") }, "errors": strings, "guests": { "type": "array", "items": schema_ref("GuestReport") }, "guests_left_out": uint }), &["agent_version", "applied_revision", "converged", "plan", "pending", "errors"]),
                "PutLedgerResponse": object(json!({ "number": uint, "candidates": uint }), &["number", "candidates"]),
                "HostStatus": object(json!({ "host": string, "enrolled": { "type": "boolean" }, "last_seen": opt_string, "desired_revision": opt_uint, "applied_revision": opt_uint, "state": { "enum": ["converged", "drifting", "pending", "error", "unknown"] }, "plan": uint, "pending": uint, "errors": uint, "agent_version": opt_string, "audit_seq": opt_uint, "audit_problems": uint }), &["host", "enrolled", "state"]),
                "AuditHead": object(json!({ "seq": uint, "hash": string }), &["seq", "hash"]),
                "AuditUpload": object(json!({ "head": schema_ref("AuditHead"), "records": { "type": "array", "items": { "type": "object" }, "maxItems": crate::proto::MAX_AUDIT_BATCH } }), &["head", "records"]),
                "AuditProblem": object(json!({ "kind": { "enum": ["gap", "fork", "rewind", "invalid"] }, "seq": uint, "detail": string, "first_seen": string, "last_seen": string, "count": uint }), &["kind", "seq", "detail", "first_seen", "last_seen", "count"]),
                "AuditPage": object(json!({ "verified": schema_ref("AuditHead"), "records": { "type": "array", "items": { "type": "object" } }, "problems": { "type": "array", "items": schema_ref("AuditProblem") } }), &["verified", "records", "problems"])
            }
        }
    })
}
