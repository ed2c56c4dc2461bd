"""The generated Terraform's backfill: a Step Functions Distributed Map over an export's
manifest-files.json, one backfill function invocation per data file, and roles that may read the
exports and write the data, error and state prefixes only."""

from __future__ import annotations

import hcl2
from infra_ddl import ROOT
from infra_hcl import TERRAFORM, normalize, resources, statements, unquote, variables

from dmd.generator.targets.terraform import BACKFILL_ENVIRONMENT, BACKFILL_HANDLER, ENVIRONMENT, PREFIX_PATTERN

BUCKET = "${aws_s3_bucket.archive.arn}"
EXPORTS = "${local.backfill_exports_arn}"


def test_backfill_runs_its_handler_from_the_same_package():
    fn, archiver = resources("aws_lambda_function")["backfill"], resources("aws_lambda_function")["archiver"]
    assert unquote(fn["handler"]) == BACKFILL_HANDLER == "dmd.ingest.backfill_handler.handler"
    for attr in ("filename", "source_code_hash", "runtime", "architectures", "layers"):
        assert fn[attr] == archiver[attr], attr
    assert fn["role"] == "${aws_iam_role.backfill.arn}" != archiver["role"]
    assert fn["tracing_config"][0]["mode"] == "Active"
    v = variables()
    assert v["backfill_timeout"]["default"] <= 900
    assert v["backfill_target_bytes"]["default"] == v["compaction_target_bytes"]["default"]
    # the handler is in a package the Lambda zip ships
    from dmd.tools.package import DEPLOYED_PACKAGES

    assert BACKFILL_HANDLER.rpartition(".")[0].rpartition(".")[0] in DEPLOYED_PACKAGES


def test_backfill_environment_is_the_archivers_plus_its_own_and_read_by_the_runtime():
    (env,) = resources("aws_lambda_function")["backfill"]["environment"]
    assert env["variables"] == {name: f"${{{expr}}}" for name, expr in BACKFILL_ENVIRONMENT}
    assert set(ENVIRONMENT) <= set(BACKFILL_ENVIRONMENT)
    v = variables()
    for name, expr in BACKFILL_ENVIRONMENT:
        if expr.startswith("var."):
            assert expr.removeprefix("var.") in v, name
    source = (ROOT / "runtime" / "ingest" / "backfill_handler.py").read_text()
    own = [name for name, _ in BACKFILL_ENVIRONMENT if (name, _) not in ENVIRONMENT]
    assert own and all(name in source for name in own)


def _s3_grants(document: str) -> dict[str, set[str]]:
    """S3 action -> the resources a policy document grants it on; no wildcard action, no S3 action
    beside others in a statement, only X-Ray and log delivery on '*'."""
    grants: dict[str, set[str]] = {}
    for sid, s in statements(document).items():
        assert s.get("effect", "Allow") == "Allow", sid
        assert all("*" not in a for a in s["actions"]), f"{sid}: wildcard action"
        s3 = [a for a in s["actions"] if a.startswith("s3:")]
        if not s3:
            if s["resources"] == ["*"]:
                assert all(a.startswith(("xray:", "logs:")) for a in s["actions"]), sid
            continue
        assert s3 == s["actions"], f"{sid}: S3 and other actions in one statement"
        for a in s3:
            grants.setdefault(a, set()).update(s["resources"])
    return grants


def test_backfill_function_role_reads_exports_and_writes_data_errors_and_state_only():
    role = resources("aws_iam_role")["backfill"]
    assert role["assume_role_policy"] == "${data.aws_iam_policy_document.assume_lambda.json}"
    assert resources("aws_iam_role_policy")["backfill"]["policy"] == "${data.aws_iam_policy_document.backfill.json}"
    grants = _s3_grants("backfill")
    assert set(grants) == {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}  # no list, no delete
    state = {f"{BUCKET}/${{var.state_prefix}}/backfill/*", f"{BUCKET}/${{var.state_prefix}}/touched/*"}
    assert grants["s3:GetObject"] == {EXPORTS} | state
    indexes = f"{BUCKET}/${{var.state_prefix}}/identities/*"  # written, never read
    assert (
        grants["s3:PutObject"] == {f"{BUCKET}/${{var.prefix}}/*", f"{BUCKET}/${{var.errors_prefix}}/*", indexes} | state
    )
    assert grants["s3:AbortMultipartUpload"] == {f"{BUCKET}/${{var.prefix}}/*"}
    assert statements("backfill")["WriteLogs"]["resources"] == ["${aws_cloudwatch_log_group.backfill.arn}:*"]


def test_state_machine_role_reads_manifests_invokes_the_function_and_runs_its_children():
    grants = _s3_grants("backfill_states")
    assert grants["s3:GetObject"] == {EXPORTS}
    assert grants["s3:PutObject"] == {f"{BUCKET}/${{var.state_prefix}}/backfill/runs/*"}
    found = statements("backfill_states")
    assert found["InvokeBackfill"]["actions"] == ["lambda:InvokeFunction"]
    assert all(r.startswith("${aws_lambda_function.backfill.arn}") for r in found["InvokeBackfill"]["resources"])
    assert not any(a.startswith("states:") for s in found.values() for a in s["actions"])
    children = statements("backfill_states_children")
    assert children["StartChildExecutions"]["actions"] == ["states:StartExecution"]
    assert children["StartChildExecutions"]["resources"] == ["${aws_sfn_state_machine.backfill.arn}"]
    (watched,) = children["WatchChildExecutions"]["resources"]
    assert watched.endswith(":execution:${local.backfill_name}/*")
    policy = resources("aws_iam_role_policy")["backfill_states_children"]
    assert policy["role"] == "${aws_iam_role.backfill_states.id}"


def test_exports_prefix_is_validated_like_the_runtimes_prefixes():
    (validation,) = variables()["backfill_export_prefix"]["validation"]
    assert f'regex("{PREFIX_PATTERN}", var.backfill_export_prefix)' in validation["condition"]


def _definition() -> dict:
    """The state machine's definition: the object passed to jsonencode(), read by python-hcl2."""
    text = (TERRAFORM / "backfill.tf").read_text()
    body = text[text.index("definition = jsonencode(") + len("definition = jsonencode(") :]
    body = body[: body.index("\n  })\n") + 4]
    return normalize(hcl2.loads(f"definition = {body}\n"))["definition"]


def test_the_state_machine_maps_the_manifest_one_data_file_per_invocation():
    machine = resources("aws_sfn_state_machine")["backfill"]
    assert machine["role_arn"] == "${aws_iam_role.backfill_states.arn}"
    assert machine["tracing_configuration"][0]["enabled"] is True
    definition = _definition()
    states = definition["States"]
    assert len(states) == 1
    dmap = states[definition["StartAt"]]
    assert dmap["Type"] == "Map" and dmap["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    reader = dmap["ItemReader"]
    assert reader["Resource"] == "arn:aws:states:::s3:getObject" and reader["ReaderConfig"] == {"InputType": "JSONL"}
    assert reader["Parameters"] == {"Bucket.$": "$.bucket", "Key.$": "$.manifest"}
    assert dmap["ItemSelector"]["file.$"] == "$$.Map.Item.Value"
    assert dmap["MaxConcurrency"] == "${var.backfill_max_concurrency}"
    (task,) = dmap["ItemProcessor"]["States"].values()
    assert task["Resource"] == "arn:aws:states:::lambda:invoke"
    assert task["Parameters"]["FunctionName"] == "${aws_lambda_function.backfill.arn}"
    assert task["Retry"][0]["MaxAttempts"] >= 1
    assert "ResultWriter" in dmap  # per-file results to S3, not into the execution's 256 KB output
