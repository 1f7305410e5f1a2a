"""The deploy catalog: container images per region and version (from generated facts),
the instance table and its GPU-aware recommendation, and the Service Quotas check.

moto 5.2.5 implements neither ListServiceQuotas nor SageMaker's default quotas, so the
quota check runs against botocore's Stubber on a real service-quotas client (real
service model): ListServiceQuotas, ListAWSDefaultServiceQuotas.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from llmship.errors import DeployError
from llmship.package.containers import DEFAULT_TRANSFORMERS, TRANSFORMERS_VERSIONS
from llmship.sagemaker.images import facts, image_for
from llmship.sagemaker.instances import hourly_price, instance_type, recommend
from llmship.targets.sagemaker.quotas import check_instance_quota

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3

# --- images -------------------------------------------------------------------------


def test_default_huggingface_image_is_the_one_llmship_packages_for():
    image = image_for("huggingface", "us-east-1", device="gpu")
    assert image.version == DEFAULT_TRANSFORMERS == "4.51.3"
    assert image.framework["transformers"] == "4.51.3"
    assert image.framework["pytorch"] == "2.6.0"
    assert image.uri == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:"
        "2.6.0-transformers4.51.3-gpu-py312-cu124-ubuntu22.04"
    )


def test_every_transformers_version_package_writes_for_has_cpu_and_gpu_images():
    for version in TRANSFORMERS_VERSIONS:
        for device in ("cpu", "gpu"):
            image = image_for(
                "huggingface", "eu-west-1", device=device, transformers_version=version
            )
            assert f"-transformers{version}-{device}-" in image.uri
            assert image.device == device


def test_cpu_image_and_older_version_have_their_own_tags():
    image = image_for("huggingface", "us-west-2", device="cpu", transformers_version="4.48.0")
    assert image.uri.endswith(":2.3.0-transformers4.48.0-cpu-py311-ubuntu22.04")
    assert image.framework == {"transformers": "4.48.0", "pytorch": "2.3.0", "python": "py311"}


def test_registry_account_and_domain_follow_the_region():
    assert image_for("tgi", "af-south-1").uri.startswith(
        "626614931356.dkr.ecr.af-south-1.amazonaws.com/huggingface-pytorch-tgi-inference:"
    )
    assert ".dkr.ecr.cn-north-1.amazonaws.com.cn/" in image_for("lmi", "cn-north-1").uri


def test_tgi_and_lmi_default_to_their_newest_version():
    tgi, lmi = image_for("tgi", "us-east-1"), image_for("lmi", "us-east-1")
    newest = {c: max(facts()["containers"][c]["versions"], key=_key) for c in ("tgi", "lmi")}
    assert tgi.version == newest["tgi"] and tgi.framework["tgi"] == newest["tgi"]
    assert f"-tgi{newest['tgi']}-gpu-" in tgi.uri
    assert lmi.version == newest["lmi"] and "/djl-inference:" in lmi.uri
    assert lmi.uri.split(":")[-1].startswith(f"{newest['lmi']}-lmi")


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (
            {"container": "huggingface", "region": "us-east-1", "transformers_version": "4.40.0"},
            ["4.40.0", "4.51.3", "4.48.0"],
        ),
        ({"container": "huggingface", "region": "mars-north-1"}, ["mars-north-1", "us-east-1"]),
        ({"container": "tgi", "region": "us-east-1", "device": "cpu"}, ["no CPU image", "GPU"]),
        ({"container": "lmi", "region": "us-east-1", "version": "0.1.0"}, ["0.1.0", "known"]),
        (
            {"container": "tgi", "region": "us-east-1", "transformers_version": "4.51.3"},
            ["huggingface"],
        ),
        (
            {
                "container": "huggingface",
                "region": "us-east-1",
                "version": "4.48.0",
                "transformers_version": "4.51.3",
            },
            ["disagree"],
        ),
        ({"container": "onnx", "region": "us-east-1"}, ["huggingface, tgi, lmi"]),
    ],
)
def test_unknown_choices_are_refused_listing_what_exists(kwargs, words):
    with pytest.raises(DeployError) as caught:
        image_for(**kwargs)
    for word in words:
        assert word in str(caught.value)


def test_image_facts_name_their_source_and_date():
    source = facts()["source"]
    assert source["url"] == "https://github.com/aws/sagemaker-python-sdk"
    assert source["retrieved"] and source["files"]


# --- the refresh script ---------------------------------------------------------------


def _refresh_module():
    spec = importlib.util.spec_from_file_location(
        "refresh_image_facts", ROOT / "scripts" / "refresh_image_facts.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sdk_files(folder: Path, tgi_account: str = "763104351884") -> Path:
    """A miniature of the SDK's image_uri_config files, in its layout."""
    regs = {"us-east-1": "763104351884", "cn-north-1": "727897471807", "us-iso-east-1": "1"}
    hf_version = {
        "pytorch2.6.0": {
            "py_versions": ["py312"],
            "registries": regs,
            "repository": "huggingface-pytorch-inference",
            "container_version": {"gpu": "cu124-ubuntu22.04", "cpu": "ubuntu22.04"},
        }
    }
    training_version = {
        "pytorch2.5.1": {
            "py_versions": ["py311"],
            "registries": regs,
            "repository": "huggingface-pytorch-training",
            "container_version": {"gpu": "cu124-ubuntu22.04"},
        }
    }
    huggingface = {
        "inference": {
            "processors": ["gpu", "cpu"],
            "versions": {v: hf_version for v in ("4.37.0", "4.48.0", "4.49.0", "4.51.3", "5.6.0")},
        },
        "training": {
            "processors": ["gpu"],
            "versions": {
                v: training_version for v in ("4.46.1", "4.49.0", "4.55.0", "4.56.2", "5.3.0")
            },
        },
    }
    tgi = {
        "inference": {
            "versions": {
                f"3.{n}.0": {
                    "py_versions": ["py311"],
                    "registries": {"us-east-1": tgi_account},
                    "tag_prefix": f"2.6.0-tgi3.{n}.0",
                    "repository": "huggingface-pytorch-tgi-inference",
                    "container_version": {"gpu": "cu124-ubuntu22.04"},
                }
                for n in range(6)
            }
        }
    }
    lmi = {
        "versions": {
            "0.9.0": {
                "registries": regs,
                "repository": "djl-inference",
                "tag_prefix": "0.9.0-lmi7.0.0-cu124",
            },
            "0.10.0": {
                "registries": regs,
                "repository": "djl-inference",
                "tag_prefix": "0.10.0-lmi8.0.0-cu128",
            },
        }
    }
    config_dir = folder / "sagemaker-core/src/sagemaker/core/image_uri_config"
    config_dir.mkdir(parents=True)
    for name, data in (
        ("huggingface.json", huggingface),
        ("huggingface-llm.json", tgi),
        ("djl-lmi.json", lmi),
    ):
        (config_dir / name).write_text(json.dumps(data))
    return folder


def test_refresh_script_extracts_what_llmship_needs(tmp_path):
    out = tmp_path / "images.json"
    refresh = _refresh_module()
    assert (
        refresh.main(
            [
                str(_sdk_files(tmp_path / "sdk")),
                "--commit",
                "abc123",
                "--date",
                "2026-01-02",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads(out.read_text())
    assert data["source"]["commit"] == "abc123" and data["source"]["retrieved"] == "2026-01-02"
    training = data["training"]["huggingface"]
    assert training["repository"] == "huggingface-pytorch-training"
    assert list(training["versions"]) == ["4.49.0", "4.55.0", "4.56.2", "5.3.0"]  # 4.46 dropped
    assert training["versions"]["4.49.0"]["tags"] == {
        "gpu": "2.5.1-transformers4.49.0-gpu-py311-cu124-ubuntu22.04"
    }
    hf = data["containers"]["huggingface"]
    assert list(hf["versions"]) == ["4.48.0", "4.49.0", "4.51.3", "5.6.0"]  # 4.37 dropped
    assert hf["default"] == "4.51.3"
    assert hf["versions"]["5.6.0"]["tags"] == {
        "cpu": "2.6.0-transformers5.6.0-cpu-py312-ubuntu22.04",
        "gpu": "2.6.0-transformers5.6.0-gpu-py312-cu124-ubuntu22.04",
    }
    tgi = data["containers"]["tgi"]
    assert list(tgi["versions"]) == ["3.2.0", "3.3.0", "3.4.0", "3.5.0"]
    assert tgi["default"] == "3.5.0"
    assert tgi["versions"]["3.5.0"]["tags"] == {"gpu": "2.6.0-tgi3.5.0-gpu-py311-cu124-ubuntu22.04"}
    lmi = data["containers"]["lmi"]
    assert lmi["default"] == "0.10.0"  # version order, not string order
    assert lmi["versions"]["0.10.0"]["framework"] == {
        "djl": "0.10.0",
        "lmi": "8.0.0",
        "cuda": "cu128",
    }
    assert data["registries"] == {
        "cn-north-1": "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn",
        "us-east-1": "763104351884.dkr.ecr.us-east-1.amazonaws.com",
    }  # isolated partitions use other domains: left out


def test_refresh_script_refuses_two_accounts_for_one_region(tmp_path):
    sdk = _sdk_files(tmp_path / "sdk", tgi_account="111111111111")
    with pytest.raises(SystemExit, match="us-east-1"):
        _refresh_module().main([str(sdk), "--out", str(tmp_path / "images.json")])


# --- instances ------------------------------------------------------------------------


def test_instance_facts_and_prices():
    g5 = instance_type("ml.g5.12xlarge")
    assert (g5.gpus, g5.gpu, g5.gpu_memory_gib, g5.vcpus, g5.memory_gib) == (
        4,
        "NVIDIA A10G",
        24.0,
        48,
        192.0,
    )
    assert hourly_price("ml.g5.12xlarge", "us-east-1") == g5.prices["us-east-1"] > 0
    assert hourly_price("ml.g5.12xlarge", "mars-north-1") is None
    assert hourly_price("ml.nonexistent.xlarge", "us-east-1") is None


def test_unknown_instance_type_suggests_close_names():
    with pytest.raises(DeployError, match=r"did you mean ml\.g5\.2xlarge"):
        instance_type("ml.g5.2xlarg")


def test_instance_table_is_complete_and_dated():
    data = json.loads((ROOT / "src/llmship/sagemaker/data/instances.json").read_text())
    assert data["source"]["as_of"] and "pricing" in data["source"]["prices"]
    assert "list prices" in data["note"] and "as of the date" in data["note"]
    families = {name.split(".")[1] for name in data["instances"]}
    assert {"m5", "c5", "m6i", "c6i", "g4dn", "g5", "g6", "g6e", "p4d", "p5"} <= families
    for name, row in data["instances"].items():
        assert (row["gpus"] > 0) == (row["gpu"] is not None) == (row["gpu_memory_gib"] > 0), name
        assert row["prices"], name
        assert set(row["prices"]) <= {"us-east-1", "us-west-2", "eu-west-1"}, name


def llama(params: float, layers: int, **overrides):
    """Sizing arguments of a Llama-style model with 8 KV heads of 128 dims, in bf16."""
    args = dict(
        params=int(params),
        dtype_bytes=2,
        layers=layers,
        kv_heads=8,
        head_dim=128,
        context=4096,
        concurrency=1,
        region="us-east-1",
    )
    return {**args, **overrides}


def test_small_model_gets_the_cheapest_single_gpu_and_the_numbers():
    choice = recommend(**llama(1.24e9, 16))
    weights = 1.24e9 * 2 / GIB
    kv = 2 * 16 * 8 * 128 * 2 * 4096 / GIB
    assert choice.tensor_parallel == 1
    assert choice.needed_gib == pytest.approx((weights + kv) * 1.2 + 1, abs=0.01)
    cheapest_gpu = min(
        (instance_type(n) for n in _names() if instance_type(n).gpus),
        key=lambda i: i.prices["us-east-1"],
    )
    assert choice.instance == cheapest_gpu
    assert choice.hourly_usd == cheapest_gpu.prices["us-east-1"]
    for text in (
        f"weights {weights:.1f} GiB",
        f"KV cache {kv:.1f} GiB",
        "4096 tokens",
        "x 1.2",
        "+ 1 GiB",
        "90%",
        cheapest_gpu.name,
        "$",
        "as of",
    ):
        assert text in choice.reason, text


def test_kv_cache_for_long_context_and_concurrency_moves_to_a_bigger_gpu():
    short = recommend(**llama(8.03e9, 32, context=2048))
    long = recommend(**llama(8.03e9, 32, context=32768, concurrency=4))
    # 15 GiB of weights fit a 24 GiB card; 16 GiB of KV cache more do not.
    assert short.instance.gpu_memory_gib == 24 and short.tensor_parallel == 1
    assert long.needed_gib > 24 * 0.9
    per_gpu = (long.needed_gib - long.tensor_parallel) / long.tensor_parallel + 1
    assert per_gpu <= long.instance.gpu_memory_gib * 0.9
    assert long.hourly_usd > short.hourly_usd


def test_seventy_billion_needs_tensor_parallelism_and_the_smallest_degree_that_fits():
    choice = recommend(**llama(70.6e9, 80, context=8192, concurrency=8, region="us-west-2"))
    assert choice.tensor_parallel in (2, 4, 8) and choice.tensor_parallel <= choice.instance.gpus
    data = choice.needed_gib - choice.tensor_parallel  # (weights + kv) x 1.2
    gpu = choice.instance.gpu_memory_gib
    assert data / choice.tensor_parallel + 1 <= gpu * 0.9
    if choice.tensor_parallel > 1:  # half the degree would not have fit
        assert data / (choice.tensor_parallel // 2) + 1 > gpu * 0.9
    assert f"tensor parallel {choice.tensor_parallel}" in choice.reason
    assert f"/ {choice.tensor_parallel} GPUs" in choice.reason
    # Every cheaper instance type is too small for it at any degree.
    for name in _names():
        other = instance_type(name)
        if other.gpus and other.prices["us-west-2"] < choice.hourly_usd:
            degrees = [d for d in (1, 2, 4, 8) if d <= other.gpus]
            assert all(data / d + 1 > other.gpu_memory_gib * 0.9 for d in degrees), name


def test_budget_picks_within_it_or_says_what_it_would_cost():
    free = recommend(**llama(8.03e9, 32))
    assert recommend(**llama(8.03e9, 32), budget_per_hour=free.hourly_usd).instance == (
        free.instance
    )
    with pytest.raises(DeployError) as caught:
        recommend(**llama(8.03e9, 32), budget_per_hour=free.hourly_usd - 0.01)
    message = str(caught.value)
    assert free.instance.name in message and f"{free.hourly_usd:.3f}" in message
    assert "budget" in message


def test_nothing_fits_says_how_much_is_needed():
    with pytest.raises(DeployError, match=r"needs [\d.]+ GiB.*quantize"):
        recommend(**llama(1.0e12, 120, context=131072, concurrency=64))


def test_cpu_path_for_small_models():
    choice = recommend(**llama(0.135e9, 30, kv_heads=3, head_dim=64, dtype_bytes=4), gpu=False)
    assert choice.instance.gpus == 0 and choice.tensor_parallel == 1
    assert choice.needed_gib <= choice.instance.memory_gib * 0.9
    assert "RAM" in choice.reason
    with pytest.raises(DeployError, match="GPU instance instead"):
        recommend(**llama(70.6e9, 80), gpu=False)


def test_region_without_prices_ranks_by_reference_prices_and_refuses_a_budget():
    choice = recommend(**llama(8.03e9, 32, region="ap-south-2"))
    assert choice.hourly_usd is None
    assert "price unknown for ap-south-2" in choice.reason
    with pytest.raises(DeployError, match="cannot be checked"):
        recommend(**llama(8.03e9, 32, region="ap-south-2"), budget_per_hour=10)


def test_nonsense_sizes_are_refused():
    with pytest.raises(DeployError, match="context=0"):
        recommend(**llama(8.03e9, 32, context=0))


# --- quotas (Stubber: moto lacks these Service Quotas APIs) -------------------------


class StubSession:
    """Hands out one stubbed client, the way llmship.aws.session.client asks a session."""

    region_name = "us-east-1"

    def __init__(self, service_client):
        self.service_client = service_client

    def client(self, service, config=None):
        assert service == "service-quotas"
        return self.service_client


@pytest.fixture()
def quotas():
    real = boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
    ).client("service-quotas")
    with Stubber(real) as stub:
        yield StubSession(real), stub
        stub.assert_no_pending_responses()


def _quota(name: str, code: str, value: float) -> dict:
    return {"ServiceCode": "sagemaker", "QuotaName": name, "QuotaCode": code, "Value": value}


def test_quota_found_on_a_later_page_is_enough(quotas):
    session, stub = quotas
    stub.add_response(
        "list_service_quotas",
        {"Quotas": [_quota("ml.m5.large for endpoint usage", "L-1", 4)], "NextToken": "p2"},
        {"ServiceCode": "sagemaker"},
    )
    stub.add_response(
        "list_service_quotas",
        {
            "Quotas": [
                _quota("ml.g5.xlarge for training job usage", "L-TR", 0),
                _quota("ml.g5.xlarge for endpoint usage", "L-G5", 2),
            ]
        },
        {"ServiceCode": "sagemaker", "NextToken": "p2"},
    )
    check = check_instance_quota(session, "ml.g5.xlarge", 2)
    assert check.ok and check.quota_code == "L-G5" and check.limit == 2 and check.needed == 2


def test_quota_too_low_names_it_and_the_request_command(quotas):
    session, stub = quotas
    stub.add_response(
        "list_service_quotas",
        {"Quotas": [_quota("ml.g5.xlarge for endpoint usage", "L-G5", 0)]},
        {"ServiceCode": "sagemaker"},
    )
    check = check_instance_quota(session, "ml.g5.xlarge", 1)
    assert not check.ok and check.limit == 0 and check.quota_code == "L-G5"
    assert "'ml.g5.xlarge for endpoint usage'" in check.message
    assert (
        "aws service-quotas request-service-quota-increase --service-code sagemaker "
        "--quota-code L-G5 --desired-value 1 --region us-east-1"
    ) in check.message


def test_training_usage_falls_back_to_the_aws_default(quotas):
    session, stub = quotas
    stub.add_response("list_service_quotas", {"Quotas": []}, {"ServiceCode": "sagemaker"})
    stub.add_response(
        "list_aws_default_service_quotas",
        {"Quotas": [_quota("ml.p5.48xlarge for training job usage", "L-P5", 0)]},
        {"ServiceCode": "sagemaker"},
    )
    check = check_instance_quota(session, "ml.p5.48xlarge", 1, usage="training")
    assert check.quota_name == "ml.p5.48xlarge for training job usage"
    assert not check.ok and check.quota_code == "L-P5" and "new accounts" in check.message


def test_unreadable_or_missing_quota_does_not_block_the_plan(quotas):
    session, stub = quotas
    stub.add_client_error(
        "list_service_quotas",
        "AccessDeniedException",
        "not allowed",
        400,
        expected_params={"ServiceCode": "sagemaker"},
    )
    denied = check_instance_quota(session, "ml.g5.xlarge", 1)
    assert denied.ok and denied.limit is None and "AccessDeniedException" in denied.message
    stub.add_response("list_service_quotas", {"Quotas": []}, {"ServiceCode": "sagemaker"})
    stub.add_response(
        "list_aws_default_service_quotas", {"Quotas": []}, {"ServiceCode": "sagemaker"}
    )
    missing = check_instance_quota(session, "ml.g5.xlarge", 1)
    assert (
        missing.ok and missing.quota_code is None and "no Service Quotas entry" in missing.message
    )


def test_a_failing_quota_service_is_reported_not_fatal(quotas):
    session, stub = quotas
    stub.add_client_error("list_service_quotas", "ServiceException", "boom", 500)
    check = check_instance_quota(session, "ml.g5.xlarge", 1)
    assert check.ok and check.limit is None and "could not check" in check.message
    assert "ServiceException" in check.message


HTML_ERROR_PAGE = """<!DOCTYPE html>
<html><head><title>503 Service Temporarily Unavailable</title></head>
<body><center><h1>503 Service Temporarily Unavailable</h1></center><hr>
<center>awselb/2.0</center></body></html>
"""


def test_a_quota_service_answering_an_html_page_gives_one_plan_line(quotas):
    """A load balancer in front of a failing Service Quotas answers with an HTML page
    (botocore makes it the error's message, the HTTP status its code): the plan shows
    the code and what to do on one line, not the page."""
    from rich.console import Console

    from llmship.cli._plan import render
    from llmship.sagemaker.cost import Cost
    from llmship.target import Plan

    session, stub = quotas
    stub.add_client_error("list_service_quotas", "", HTML_ERROR_PAGE, 503)
    check = check_instance_quota(session, "ml.g5.xlarge", 1)
    assert check.ok and check.limit is None
    assert check.message == (
        "could not check the quota 'ml.g5.xlarge for endpoint usage': Service Quotas "
        "answered 503; Service Quotas is failing (a later plan checks again); SageMaker "
        "checks the limit when it creates the endpoint"
    )
    plan = Plan(
        target="sagemaker",
        deployment="demo",
        project="p",
        region="us-east-1",
        kind="realtime",
        actions=[],
        cost=Cost(1.21, ""),
        quota=check,
    )
    console = Console(record=True, width=400)
    console.print(render(plan))
    [quota_line] = [line for line in console.export_text().splitlines() if "quota" in line]
    assert quota_line.startswith("quota: could not check") and "<" not in quota_line


def test_a_refused_quota_read_names_the_permission(quotas):
    session, stub = quotas
    stub.add_client_error(
        "list_service_quotas", "AccessDeniedException", "User is not authorized", 400
    )
    check = check_instance_quota(session, "ml.p4d.24xlarge", 1, usage="training")
    assert check.ok and "\n" not in check.message
    assert "answered AccessDeniedException (HTTP 400): User is not authorized" in check.message
    assert "grant servicequotas:ListServiceQuotas" in check.message
    assert check.message.endswith("when it creates the training job")


def test_other_quota_errors_are_aws_errors(quotas):
    from llmship.errors import AwsError

    session, stub = quotas
    stub.add_client_error("list_service_quotas", "ValidationException", "bad request", 400)
    with pytest.raises(AwsError, match="ValidationException"):
        check_instance_quota(session, "ml.g5.xlarge", 1)


def test_the_quota_check_gives_up_quickly_on_a_broken_service(aws_env):
    """moto answers ListServiceQuotas with a 500: the plan must not wait through a minute
    of retries for advice."""
    import time

    session = boto3.session.Session(region_name="us-west-2")
    started = time.monotonic()
    check = check_instance_quota(session, "ml.g5.xlarge", 1)
    assert check.ok and "could not check" in check.message
    assert time.monotonic() - started < 10


def _names() -> list[str]:
    return list(
        json.loads((ROOT / "src/llmship/sagemaker/data/instances.json").read_text())["instances"]
    )


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))
