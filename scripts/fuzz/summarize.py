"""Summarise a schemathesis 4.x NDJSON report for scripts/fuzz-api.sh.

    summarize.py REPORT.ndjson REPORT.json SERVER_ALIVE(0|1)

Prints operations, requests sent, status classes and failures by class; exits 1 when the
run found a 5xx, a hang (request timeout) or another network error (crash), or the server died.
"""
import base64
import collections
import json
import sys

ndjson_path, json_path, server_alive = sys.argv[1], sys.argv[2], sys.argv[3] == "1"

CLASSES = {
    "not_a_server_error": "5xx server error",
    "status_code_conformance": "status not documented",
    "content_type_conformance": "content type not documented",
    "response_headers_conformance": "response headers not as documented",
    "response_schema_conformance": "response schema mismatch",
    "negative_data_rejection": "schema-invalid request accepted",
    "positive_data_acceptance": "schema-valid request refused",
    "schema_valid_request_refused_for_shape": "schema-valid request refused",
    "missing_required_header": "missing required header accepted",
    "ignored_auth": "authentication ignored",
    "unsupported_method": "405 / Allow handling",
    "allow_header_conformance": "405 / Allow handling",
    "use_after_free": "stateful: use after free",
    "ensure_resource_availability": "stateful: resource unavailable",
    "object_level_authorization": "object-level authorization",
    "max_response_time": "slow response",
}
FATAL = {"5xx server error", "hang / request timeout", "network error / crash", "server process died"}

requests = 0
# Errors inside the fuzzer itself (CPython's "AST constructor recursion depth mismatch"
# SystemError in hypothesis' code generation was seen once in 8,000 cases): reported, not a
# finding about Kosh, and not fatal, since the request was never sent.
TOOL_ERRORS = ('"SystemError"', '"RecursionError"', "AST constructor", "hypothesis.errors")


# Hypothesis' FlakyFailure: a case whose checks failed once and passed when replayed — a
# state-dependent check (an order paid or a payment in progress between the two runs), not
# something Kosh did to the connection. Unless the text names a connection failure too.
CONNECTION_MARKERS = ("ConnectionError", "Connection aborted", "RemoteDisconnected", "Connection reset", "ConnectionReset")


def classify(text):
    if "imeout" in text or "timed out" in text:
        return "hang / request timeout"
    if any(marker in text for marker in TOOL_ERRORS):
        return "fuzzer internal error"
    if "FlakyFailure" in text and not any(marker in text for marker in CONNECTION_MARKERS):
        return "fuzzer internal error"
    return "network error / crash"


statuses = collections.Counter()
failed_requests = collections.Counter()          # class -> failing requests
unique = collections.defaultdict(set)            # class -> {(operation, detail)}
examples = {}                                    # class -> one reproduction
network = collections.Counter()
no_response = 0                                  # requests that got no answer

for line in open(ndjson_path, encoding="utf-8"):
    event = json.loads(line)
    name, body = next(iter(event.items()))
    if name in ("NonFatalError", "FatalError"):
        text = json.dumps(body)
        cls = classify(text)
        network[cls] += 1
        unique[cls].add((body.get("label", "?") if isinstance(body, dict) else "?", text[:200]))
        continue
    if name != "ScenarioFinished":
        continue
    recorder = body["recorder"]
    label = recorder.get("label", "?")
    cases = recorder.get("cases", {})
    for case_id, interaction in recorder.get("interactions", {}).items():
        requests += 1
        response = interaction.get("response")
        if response is None:
            no_response += 1
            continue
        statuses[f"{response['status_code'] // 100}xx"] += 1
    for case_id, checks in recorder.get("checks", {}).items():
        seen = set()
        for check in checks:
            if check.get("status") != "failure":
                continue
            cls = CLASSES.get(check["name"], check["name"])
            if cls in seen:
                continue
            seen.add(cls)
            failed_requests[cls] += 1
            failure = (check.get("failure_info") or {}).get("failure") or check.get("failure") or {}
            title = (failure.get("message") or failure.get("title") or check["name"]).split("\n")[0][:160]
            unique[cls].add((label, title))
            if cls not in examples:
                case = (cases.get(case_id) or {}).get("value", {})
                interaction = recorder.get("interactions", {}).get(case_id) or {}
                response = interaction.get("response") or {}
                content = response.get("content") or {}
                text = ""
                if "$base64" in content:
                    text = base64.b64decode(content["$base64"]).decode("utf-8", "replace")
                elif isinstance(content, str):
                    text = content
                request = interaction.get("request") or {}
                examples[cls] = (f"{request.get('method', case.get('method'))} {request.get('uri', case.get('path'))}"
                                 f" body={json.dumps(case.get('body'))[:300]}"
                                 f" -> {response.get('status_code')} {text[:300]}")

for cls, count in network.items():
    failed_requests[cls] += count
if no_response and not network:
    failed_requests["network error / crash"] += no_response
    unique["network error / crash"].add(("?", f"{no_response} requests got no response"))

report = json.load(open(json_path, encoding="utf-8"))
ops = report.get("operations", {})
for error in report.get("errors", []):
    text = json.dumps(error)
    cls = classify(text)
    if not network:
        failed_requests[cls] += 1
        unique[cls].add(("?", text[:200]))
if not server_alive:
    failed_requests["server process died"] += 1

print("== Fuzzing summary ==")
print(f"operations: {ops.get('tested', '?')} tested of {ops.get('selected', '?')} selected "
      f"({ops.get('errored', 0)} errored, {ops.get('skipped', 0)} skipped)")
print(f"test cases generated: {report.get('test_cases', {}).get('generated', '?')}; "
      f"requests sent: {requests} ({', '.join([f'{k} {v}' for k, v in sorted(statuses.items())] + ([f'no response {no_response}'] if no_response else []))})")
print(f"seed: {report.get('seed')}; stop: {report.get('stop_reason')}; running time: {report.get('running_time', 0):.0f} s")
all_classes = sorted(set(CLASSES.values()) | FATAL | {"fuzzer internal error"})
print("failures by class (failing requests / unique operation+failure):")
for cls in all_classes:
    print(f"  {cls:38} {failed_requests.get(cls, 0):5d} / {len(unique.get(cls, ())):d}")
for cls in sorted(unique):
    for label, title in sorted(unique[cls])[:10]:
        print(f"    [{cls}] {label}: {title}")
    if cls in examples:
        print(f"    e.g. {examples[cls]}")
fatal = [cls for cls in FATAL if failed_requests.get(cls)]
other = sum(v for k, v in failed_requests.items() if k not in FATAL)
if fatal:
    print(f"FAILED: {', '.join(sorted(fatal))}")
    sys.exit(1)
print(f"OK: no 5xx, hang, crash or server death ({other} other failing requests, listed above)" if other
      else "OK: no failures")
