"""The generated Terraform runs the compactor on a schedule, with a role that may only list, read,
write and delete under the data and state prefixes; in fan-out mode the scheduled function sends
one message per partition to a queue whose event source mapping runs the compaction worker. Every
key-prefix variable is validated the way the runtime validates prefixes."""

from __future__ import annotations

import re

import pytest
from infra_ddl import ROOT
from infra_hcl import locals_, module, policy_documents, resources, statements, unquote, variables

from dmd.generator.targets.terraform import (
    COMPACTOR_ENVIRONMENT,
    PLANNER_ENVIRONMENT,
    PREFIX_PATTERN,
    WORKER_HANDLER,
)

BUCKET = "${aws_s3_bucket.archive.arn}"
# The only places the compactor's role may touch objects.
PREFIXES = ("${var.prefix}/", "${var.state_prefix}/")
COMPACTOR_S3_ACTIONS = {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}


def compactor() -> dict:
    return resources("aws_lambda_function")["compactor"]


def test_compactor_runs_the_compact_handler_from_the_same_package():
    fn, archiver = compactor(), resources("aws_lambda_function")["archiver"]
    assert unquote(fn["handler"]) == "dmd.lake.compact_handler.handler"
    for attr in ("filename", "source_code_hash", "runtime", "architectures", "layers"):
        assert fn[attr] == archiver[attr], attr
    assert fn["role"] == "${aws_iam_role.compactor.arn}" != archiver["role"]
    assert (fn["memory_size"], fn["timeout"]) == ("${var.compactor_memory_size}", "${var.compactor_timeout}")
    v = variables()
    assert v["compactor_timeout"]["default"] <= 900  # Lambda's limit
    assert v["compactor_memory_size"]["default"] >= 2 * 512  # the compactor's peak-RSS target, with headroom
    # the budget leaves time for the partition in hand, by default and by precondition
    assert v["compaction_budget_seconds"]["default"] <= v["compactor_timeout"]["default"] - 60
    preconditions = [p["condition"] for p in fn["lifecycle"][0]["precondition"]]
    assert any("var.compaction_budget_seconds" in c and "var.compactor_timeout" in c for c in preconditions)
    assert v["compaction_min_age_seconds"]["default"] == 3600
    assert v["compaction_target_bytes"]["default"] == 128 * 1024 * 1024


def worker() -> dict:
    return resources("aws_lambda_function")["compaction_worker"]


def test_compactor_environment_is_the_one_table_of_the_generator():
    (env,) = compactor()["environment"]
    both = {name: f"${{{expr}}}" for name, expr in COMPACTOR_ENVIRONMENT}
    assert env["variables"] == both | {name: f"${{{expr}}}" for name, expr in PLANNER_ENVIRONMENT}
    assert {"DMD_BUCKET", "DMD_PREFIX", "DMD_STATE_PREFIX"} <= set(env["variables"])
    (worker_env,) = worker()["environment"]
    assert worker_env["variables"] == both  # no queue: a worker never plans
    v = variables()
    for name, expr in COMPACTOR_ENVIRONMENT:
        if expr.startswith("var."):
            assert expr.removeprefix("var.") in v, name


def test_compactor_environment_names_are_read_by_the_runtime():
    """Once the compactor is in the runtime, every variable Terraform sets is one it reads."""
    lake = ROOT / "runtime" / "lake"
    if not (lake / "compact_handler.py").exists():
        pytest.skip("dmd.lake.compact_handler is not on this branch yet")
    source = "\n".join(p.read_text() for p in lake.rglob("*.py"))
    names = [name for name, _ in COMPACTOR_ENVIRONMENT + PLANNER_ENVIRONMENT]
    assert [name for name in names if name not in source] == []


def test_one_compactor_at_a_time_and_failures_are_kept():
    fn = compactor()
    assert fn["reserved_concurrent_executions"] == 1
    assert fn["dead_letter_config"][0]["target_arn"] == "${aws_sqs_queue.compactor_failures.arn}"
    assert fn["tracing_config"][0]["mode"] == "Active"
    invoke = resources("aws_lambda_function_event_invoke_config")["compactor"]
    assert invoke["function_name"] == "${aws_lambda_function.compactor.function_name}"
    assert 0 <= invoke["maximum_retry_attempts"] <= 2
    queue = resources("aws_sqs_queue")["compactor_failures"]
    assert queue["sqs_managed_sse_enabled"] is True
    log_group = resources("aws_cloudwatch_log_group")["compactor"]
    assert log_group["retention_in_days"] == "${var.log_retention_days}"


def test_the_schedule_invokes_the_compactor():
    (rule_name, rule), *others = resources("aws_cloudwatch_event_rule").items()
    assert not others
    assert rule["schedule_expression"] == "${var.compaction_schedule}"
    schedule = variables()["compaction_schedule"]
    assert schedule["default"] == "rate(1 hour)"
    pattern = re.search(r'regex\("(.*)", var\.compaction_schedule\)', schedule["validation"][0]["condition"])
    regex = pattern.group(1).replace("\\\\", "\\")
    assert re.fullmatch(regex, "rate(1 hour)") and re.fullmatch(regex, "cron(0 * * * ? *)")
    assert not re.fullmatch(regex, "every hour") and not re.fullmatch(regex, "rate(0 hours)")
    (target,) = resources("aws_cloudwatch_event_target").values()
    assert target["rule"] == f"${{aws_cloudwatch_event_rule.{rule_name}.name}}"
    assert target["arn"] == "${aws_lambda_function.compactor.arn}"
    (permission,) = resources("aws_lambda_permission").values()
    assert permission["action"] == "lambda:InvokeFunction"
    assert permission["function_name"] == "${aws_lambda_function.compactor.function_name}"
    assert permission["principal"] == "events.amazonaws.com"
    assert permission["source_arn"] == f"${{aws_cloudwatch_event_rule.{rule_name}.arn}}"


def test_compactor_role_is_least_privilege():
    role = resources("aws_iam_role")["compactor"]
    assert role["assume_role_policy"] == "${data.aws_iam_policy_document.assume_lambda.json}"
    policy = resources("aws_iam_role_policy")["compactor"]
    assert policy["role"] == "${aws_iam_role.compactor.id}"
    assert policy["policy"] == "${data.aws_iam_policy_document.compactor.json}"

    found = statements("compactor")
    assert_s3_least_privilege(found)
    assert found["SendFailures"]["resources"] == ["${aws_sqs_queue.compactor_failures.arn}"]
    assert found["WriteLogs"]["resources"] == ["${aws_cloudwatch_log_group.compactor.arn}:*"]
    # it may send to the fan-out queue only in fan-out mode, and nothing else on SQS
    sqs = {sid: s for sid, s in found.items() if any(a.startswith("sqs:") for a in s["actions"])}
    assert {sid: s["actions"] for sid, s in sqs.items()} == {
        "SendFailures": ["sqs:SendMessage"],
        "SendPartitions": ["sqs:SendMessage"],
    }
    (dynamic,) = [
        d["statement"]
        for d in policy_documents()["compactor"]["dynamic"]
        if d["statement"]["content"][0]["sid"] == "SendPartitions"
    ]
    assert dynamic["for_each"] == "${local.fan_out ? [aws_sqs_queue.compaction.arn] : []}"
    assert found["SendPartitions"]["resources"] == ["${statement.value}"]


def assert_s3_least_privilege(found: dict[str, dict]) -> None:
    s3_actions = set()
    for sid, s in found.items():
        assert s.get("effect", "Allow") == "Allow", sid
        assert all("*" not in a for a in s["actions"]), f"{sid}: wildcard action"
        s3 = [a for a in s["actions"] if a.startswith("s3:")]
        if not s3:
            if s["resources"] == ["*"]:  # only what has no resource-level permissions
                assert all(a.startswith("xray:") for a in s["actions"]), sid
            continue
        assert s3 == s["actions"], f"{sid}: S3 and other actions in one statement"
        s3_actions |= set(s3)
        if s3 == ["s3:ListBucket"]:
            # the bucket itself, and only with a prefix under the two
            assert s["resources"] == [BUCKET], sid
            (condition,) = s["condition"]
            assert (condition["test"], condition["variable"]) == ("StringLike", "s3:prefix")
            assert condition["values"] and all(v.startswith(PREFIXES) for v in condition["values"]), sid
        else:
            assert "s3:ListBucket" not in s3, sid
            for arn in s["resources"]:
                assert arn.startswith(BUCKET + "/") and arn.removeprefix(BUCKET + "/").startswith(PREFIXES), arn
    assert {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= s3_actions <= COMPACTOR_S3_ACTIONS
    # both prefixes are actually granted (list, and get/put/delete)
    granted = {arn for s in found.values() for arn in s["resources"]}
    assert {f"{BUCKET}/{p}*" for p in PREFIXES} <= granted


# --- fan-out ---------------------------------------------------------------------------------------


def test_compaction_mode_chooses_whether_the_scheduled_run_plans():
    v = variables()["compaction_mode"]
    assert v["default"] == "single"
    assert v["validation"][0]["condition"] == '${contains(["single", "fan-out"], var.compaction_mode)}'
    (local,) = [b for b in module()["locals"] if "fan_out" in b]
    assert local["fan_out"] == '${var.compaction_mode == "fan-out"}'
    (env,) = compactor()["environment"]
    assert env["variables"]["DMD_COMPACT_QUEUE_URL"] == '${local.fan_out ? aws_sqs_queue.compaction.url : ""}'


def test_the_queue_runs_the_worker_with_partial_batch_responses_and_a_dead_letter_queue():
    fn, archiver = worker(), resources("aws_lambda_function")["archiver"]
    assert unquote(fn["handler"]) == WORKER_HANDLER == "dmd.lake.compact_handler.worker"
    for attr in ("filename", "source_code_hash", "runtime", "architectures", "layers"):
        assert fn[attr] == archiver[attr], attr
    assert (fn["memory_size"], fn["timeout"]) == ("${var.compactor_memory_size}", "${var.compactor_timeout}")
    assert fn["role"] == "${aws_iam_role.compaction_worker.arn}"
    assert fn["tracing_config"][0]["mode"] == "Active"
    mapping = resources("aws_lambda_event_source_mapping")["compaction"]
    assert mapping["event_source_arn"] == "${aws_sqs_queue.compaction.arn}"
    assert mapping["function_name"] == "${aws_lambda_function.compaction_worker.arn}"
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["batch_size"] == "${var.compaction_worker_batch_size}"
    assert mapping["scaling_config"][0]["maximum_concurrency"] == "${var.compaction_max_concurrency}"
    v = variables()
    assert 2 <= v["compaction_max_concurrency"]["default"] <= 1000  # Lambda's range for SQS sources
    assert 1 <= v["compaction_worker_batch_size"]["default"] <= 10
    queue = resources("aws_sqs_queue")["compaction"]
    # a message is not delivered again while a worker may still hold it (AWS: 6x the timeout)
    assert queue["visibility_timeout_seconds"] == "${6 * var.compactor_timeout}"
    assert 6 * v["compactor_timeout"]["default"] <= 43200  # SQS's maximum
    assert queue["sqs_managed_sse_enabled"] is True
    redrive = queue["redrive_policy"]
    assert "aws_sqs_queue.compaction_dead.arn" in redrive and "var.compaction_max_receive_count" in redrive
    dead = resources("aws_sqs_queue")["compaction_dead"]
    assert dead["sqs_managed_sse_enabled"] is True
    assert dead["message_retention_seconds"] == "${var.failure_retention_seconds}"


def test_worker_role_is_least_privilege():
    policy = resources("aws_iam_role_policy")["compaction_worker"]
    assert policy["role"] == "${aws_iam_role.compaction_worker.id}"
    assert policy["policy"] == "${data.aws_iam_policy_document.compaction_worker.json}"
    found = statements("compaction_worker")
    assert_s3_least_privilege(found)
    sqs = [(s["actions"], s["resources"]) for s in found.values() if any(a.startswith("sqs:") for a in s["actions"])]
    # what the event source mapping polls and deletes with; it sends nothing
    assert sqs == [
        (["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], ["${aws_sqs_queue.compaction.arn}"])
    ]
    assert found["WriteLogs"]["resources"] == ["${aws_cloudwatch_log_group.compaction_worker.arn}:*"]


def runtime_accepts(prefix: str) -> bool:
    from dmd.ingest.config import ConfigError, Settings

    try:
        state = "s-" + prefix.replace("/", "-")  # apart from both: only the rule for one prefix is compared
        Settings(prefix=prefix, errors_prefix="x-" + prefix.replace("/", "-"), state_prefix=state)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("name", ["prefix", "errors_prefix", "state_prefix"])
def test_prefix_variables_are_validated_like_the_runtime(name: str):
    variable = variables()[name]
    (validation,) = variable["validation"]
    condition = validation["condition"]
    assert condition == (
        f'${{can(regex("{PREFIX_PATTERN}", var.{name})) && !contains(split("/", var.{name}), ".") '
        f'&& !contains(split("/", var.{name}), "..")}}'
    )
    assert runtime_accepts(variable["default"])

    def terraform_accepts(value: str) -> bool:
        parts = value.split("/")
        return bool(re.fullmatch(PREFIX_PATTERN.strip("^$"), value)) and "." not in parts and ".." not in parts

    examples = ["archive", "a/b/c", "_dmd-state", "x.y", "it's(1)!*", "", "/a", "a/", "a//b", "a/../b", "./a"]
    examples += ["a b", "a\nb", "ü", "a\\b", "a?b", "..", "a/."]
    assert {x: terraform_accepts(x) for x in examples} == {x: runtime_accepts(x) for x in examples}


def test_state_prefix_stays_apart_from_the_other_prefixes():
    v = variables()
    state = v["state_prefix"]["default"]
    for other in ("prefix", "errors_prefix"):
        assert not f"{state}/".startswith(f"{v[other]['default']}/")
        assert not f"{v[other]['default']}/".startswith(f"{state}/")
        assert any(
            "var.state_prefix" in p["condition"] and f"var.{other}" in p["condition"]
            for p in compactor()["lifecycle"][0]["precondition"]
        ), other


def test_versions_replaced_by_compaction_expire():
    (lifecycle,) = resources("aws_s3_bucket_lifecycle_configuration").values()
    expiring = {
        r["filter"][0]["prefix"]: r["noncurrent_version_expiration"][0]["noncurrent_days"]
        for r in lifecycle["rule"]
        if r.get("noncurrent_version_expiration") and r["filter"][0].get("prefix")
    }
    assert expiring["${var.prefix}/"] == expiring["${var.state_prefix}/"] == "${var.noncurrent_expiration_days}"


def test_every_name_made_from_the_function_name_fits_its_limit():
    """The longest function name the variable allows still makes valid Lambda, IAM and SQS names."""
    (validation,) = variables()["function_name"]["validation"]
    longest = int(re.search(r"\{1,(\d+)\}", validation["condition"]).group(1))
    name = "f" * longest
    limits = {"aws_lambda_function": 64, "aws_iam_role": 64, "aws_sqs_queue": 80}
    for kind, limit in limits.items():
        for resource, body in resources(kind).items():
            made = unquote(body["name" if kind != "aws_lambda_function" else "function_name"])
            for local, value in locals_().items():  # names the module derives from function_name
                if isinstance(value, str) and value.startswith("${var.function_name}"):
                    made = made.replace("${local." + local + "}", value)
            made = made.replace("${var.function_name}", name)
            assert "${" not in made and len(made) <= limit, (kind, resource, made)
