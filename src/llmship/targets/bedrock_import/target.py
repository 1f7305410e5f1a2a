"""Deploy target `bedrock-import`: llmship's own merged model imported into Bedrock with
Custom Model Import, then invoked on demand.

The plan checks, before anything is uploaded, that Bedrock can import the model (its
architecture and files) in this region; apply uploads a run's model folder (or takes
bedrock.import_model_data), creates or reuses the service role, and waits for the import
job. Status, refresh, invoke and destroy are every Bedrock deployment's
(llmship.bedrock.hosted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmship.aws.errors import aws_call
from llmship.aws.iam import _identity, call_with_new_role
from llmship.aws.role_grants import RoleGrant, S3Access, put_grant
from llmship.aws.uris import s3_parts
from llmship.bedrock.facts import import_facts, source
from llmship.bedrock.hosted import (
    IMPORT_JOB_KIND,
    IMPORTED_KIND,
    PRICING,
    BedrockHosted,
    bedrock_tags,
)
from llmship.bedrock.role import (
    ROLE_KIND,
    Prefixes,
    ensure_role,
    job_grant,
    outside_prefixes,
    role_name,
)
from llmship.errors import DeployError
from llmship.progress import RecordingReporter, Reporter
from llmship.sagemaker.cost import Cost
from llmship.state import Kind, Status, state_path
from llmship.target import Action, Deployed, DeployRequest, Plan

IMPORT_KINDS = (IMPORT_JOB_KIND, IMPORTED_KIND)


@dataclass
class ImportSpec:
    """What BedrockImportTarget.apply creates."""

    name: str
    job_name: str
    s3_uri: str
    tags: list[dict[str, str]]
    prefixes: Prefixes
    run_id: str
    role_arn: str | None
    local_dir: Path | None = None
    upload_files: list[str] = field(default_factory=list)
    vpc: Any = None
    grant: RoleGrant | None = None


def check_import_files(names: list[str], config: dict | None, where: str) -> list[str]:
    """Problems that would fail an import job minutes later: an architecture Bedrock does
    not import, or files it needs missing from the folder's root."""
    facts, problems = import_facts(), []
    roots = [n for n in names if "/" not in n]
    if config is None:
        problems.append(f"{where} has no config.json; import a saved Hugging Face model folder")
    else:
        architectures = config.get("architectures") or []
        if not any(a in facts["architectures"] for a in architectures):
            problems.append(
                f"{where}: architecture {', '.join(architectures) or 'unknown'} is not one "
                f"Custom Model Import accepts ({', '.join(sorted(facts['architectures']))}; "
                f"{source('custom_model_import')})"
            )
    missing = [f for f in facts["required_files"] if f not in roots and f != "config.json"]
    if not any(n.endswith(facts["weights_suffix"]) for n in roots):
        missing.insert(0, f"*{facts['weights_suffix']} weights")
    if missing:
        problems.append(
            f"{where} lacks {', '.join(missing)}; train with train.merge: true (merged "
            "safetensors weights and a fast tokenizer) or save the model with them"
        )
    return problems


class BedrockImportTarget(BedrockHosted):
    """llmship's merged model imported with Custom Model Import, invoked on demand."""

    name = "bedrock-import"

    def plan(self, request: DeployRequest) -> Plan:
        """Where the model comes from, whether Bedrock can import it, what it creates."""
        cfg, aws = request.config, request.config.aws
        region = self.session().region_name
        facts = import_facts()
        problems: list[str] = []
        actions: list[Action] = []
        if region not in facts["regions"]:
            problems.append(
                f"aws.region: Custom Model Import runs in {', '.join(facts['regions'])}, not "
                f"{region} ({source('custom_model_import')})"
            )
        if not aws.bucket:
            raise DeployError(
                "aws.bucket is not set: Bedrock imports the model from there; run `llmship aws "
                "bootstrap` or set aws.bucket"
            )
        prefixes = Prefixes(aws.bucket, request.project)
        local_dir, upload = None, []
        if cfg.bedrock.import_model_data:
            s3_uri = cfg.bedrock.import_model_data
            names, config = self._remote_files(s3_uri)
        else:
            if request.run is None:
                raise DeployError(
                    "nothing to import: give a run (llmship deploy RUN --target bedrock-import) "
                    "or set bedrock.import_model_data to an S3 prefix holding a merged model"
                )
            local_dir = request.run.model
            s3_uri = prefixes.uri(f"{prefixes.input}{request.name}/model/")
            upload = sorted(
                str(p.relative_to(local_dir)) for p in local_dir.rglob("*") if p.is_file()
            )
            names = upload
            config_path = local_dir / "config.json"
            config = json.loads(config_path.read_text()) if config_path.is_file() else None
            actions.append(
                Action("create", Kind.S3_ARTIFACT, s3_uri, f"upload {len(upload)} files")
            )
        problems += check_import_files(names, config, s3_uri)
        if [r for r in self.store.resources(request.name) if r.kind in IMPORT_KINDS]:
            problems.append(
                f"{request.name} already has an imported model; `llmship destroy {request.name}` "
                "first, or set deploy.name"
            )
        if not cfg.bedrock.role_arn:
            actions.append(
                Action("keep", ROLE_KIND, role_name(request.project), "created if missing")
            )
        grant = self._grant(request, s3_uri, prefixes)
        warnings = []
        if grant is not None:
            actions.append(Action("create", Kind.IAM_ROLE_POLICY, grant.record, grant.describe()))
            warnings, problems = grant.warnings, problems + grant.problems
        job_name = f"{request.name}-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}"
        price = facts.get("hourly_usd_per_custom_model_unit")
        note = f"imported model: {facts['billing']}; " + (
            f"${price:.4f}/Custom Model Unit-hour" if price is not None else f"price: {PRICING}"
        )
        actions.append(Action("create", IMPORT_JOB_KIND, job_name, s3_uri))
        actions.append(Action("create", IMPORTED_KIND, request.name, "on-demand"))
        tags = bedrock_tags(request.tags)
        return Plan(
            target=self.name,
            deployment=request.name,
            project=request.project,
            region=region,
            kind="custom model import",
            actions=actions,
            cost=Cost(None, note),
            warnings=warnings,
            problems=problems,
            spec=ImportSpec(
                name=request.name,
                job_name=job_name,
                s3_uri=s3_uri,
                tags=tags,
                prefixes=prefixes,
                run_id=request.run_id,
                role_arn=cfg.bedrock.role_arn,
                local_dir=local_dir,
                upload_files=upload,
                vpc=cfg.bedrock.vpc,
                grant=grant,
            ),
        )

    def _grant(self, request: DeployRequest, s3_uri: str, prefixes: Prefixes):
        """The role's extra policy for this import: Bedrock's VPC permissions, and reading
        bedrock.import_model_data when it lies outside the project's input prefix."""
        cfg = request.config.bedrock
        outside = outside_prefixes(s3_uri, prefixes)
        if not (outside or cfg.vpc.subnets):
            return None
        role_arn = cfg.role_arn
        if not role_arn:
            account, partition = _identity(self.session())
            role_arn = f"arn:{partition}:iam::{account}:role/{role_name(request.project)}"
        return job_grant(
            self.session(),
            role_arn,
            command="bedrock-import",
            deployment=request.name,
            vpc=cfg.vpc,
            job="model-import-job",
            accesses=[S3Access(s3_uri, "read")] if outside else [],
        )

    def _remote_files(self, uri: str) -> tuple[list[str], dict | None]:
        bucket, prefix = s3_parts(uri)
        s3 = self.client("s3")
        with aws_call("s3", "ListObjectsV2", uri):
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            names = [o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", [])]
            config = None
            if "config.json" in names:
                body = s3.get_object(Bucket=bucket, Key=f"{prefix}config.json")["Body"].read()
                config = json.loads(body)
        return names, config

    def apply(self, plan: Plan, *, reporter: Reporter | None = None) -> Deployed:
        from llmship.aws.s3 import upload_file

        plan.check()
        reporter = reporter or RecordingReporter()
        spec: ImportSpec = plan.spec
        region, project = plan.region, plan.project
        if spec.local_dir is not None:
            bucket, prefix = s3_parts(spec.s3_uri)
            self.store.record_creating(Kind.S3_ARTIFACT, spec.s3_uri, spec.name, project, region)
            for name in spec.upload_files:
                upload_file(
                    self.client("s3"),
                    spec.local_dir / name,
                    bucket,
                    prefix + name,
                    state_path().parent / "uploads",
                    reporter,
                )
            self.store.set_status(Kind.S3_ARTIFACT, spec.s3_uri, Status.UP, region)
        role_arn = spec.role_arn or ensure_role(
            self.session(),
            prefixes=spec.prefixes,
            deployment=spec.name,
            run_id=spec.run_id,
            store=self.store,
        )
        if spec.grant is not None:
            put_grant(
                self.client("iam"), spec.grant, store=self.store, deployment=spec.name,
                project=project,
            )  # fmt: skip
        details = {"role": role_arn, "source": spec.s3_uri}
        self.store.record_creating(
            IMPORT_JOB_KIND, spec.job_name, spec.name, project, region, details
        )
        self.store.record_creating(IMPORTED_KIND, spec.name, spec.name, project, region, details)
        request: dict[str, Any] = {
            "jobName": spec.job_name,
            "importedModelName": spec.name,
            "roleArn": role_arn,
            "modelDataSource": {"s3DataSource": {"s3Uri": spec.s3_uri}},
            "jobTags": spec.tags,
            "importedModelTags": spec.tags,
        }
        if spec.vpc is not None and spec.vpc.subnets:
            request["vpcConfig"] = {
                "subnetIds": list(spec.vpc.subnets),
                "securityGroupIds": list(spec.vpc.security_groups),
            }
        with aws_call("bedrock", "CreateModelImportJob", spec.job_name):
            job_arn = call_with_new_role(
                lambda: self.client("bedrock").create_model_import_job(**request),
                role_arn=role_arn,
                service="bedrock",
                operation="CreateModelImportJob",
                resource=spec.job_name,
                sleep=self.sleep,
            )["jobArn"]
        self.store.set_status(IMPORT_JOB_KIND, spec.job_name, Status.UP, region, {"arn": job_arn})
        job = self._wait(
            f"model import job {spec.job_name}",
            lambda: self._call(
                "get_model_import_job", "GetModelImportJob", spec.job_name, jobIdentifier=job_arn
            ),
            "Completed",
            reporter,
        )
        model_arn = job["importedModelArn"]
        self.store.set_status(IMPORTED_KIND, spec.name, Status.UP, region, {"arn": model_arn})
        return Deployed(
            plan.deployment, self.name, model_arn, "Active", None,
            (f"invoke with InvokeModel on {model_arn} (on-demand, cold starts possible)",),
        )  # fmt: skip
