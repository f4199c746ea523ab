"""Check the answers before anything is written; a bad answer exits 1 and cookiecutter removes the folder."""

import os
import re
import sys

ANSWERS = {
    "repo_name": "{{ cookiecutter.repo_name }}",
    "tenant_id": "{{ cookiecutter.tenant_id }}",
    "cloud_provider": "{{ cookiecutter.cloud_provider }}",
    "compute_type": "{{ cookiecutter.compute_type }}",
    "region": "{{ cookiecutter.region }}",
    "state_bucket": "{{ cookiecutter.state_bucket }}",
    "project_id": "{{ cookiecutter.project_id }}",
}
COMPUTE = {"aws": ["ecs_task", "lambda", "ec2_instance"], "gcp": ["cloud_run", "gce_instance", "gke_pod"]}
RULES = [
    ("repo_name", r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", "letters, digits, '_', '-', '.'"),
    ("tenant_id", r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", "letters, digits, '_', '-', '.'"),
    ("state_bucket", r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", "3-63 lowercase letters, digits, '.', '-' (S3/GCS bucket rules)"),
]
REGION = {"aws": (r"^[a-z]{2}(-gov)?-[a-z]+-\d$", "like us-east-1"), "gcp": (r"^[a-z]+-[a-z]+\d$", "like us-central1")}


def main() -> int:
    problems = []
    for key, pattern, allowed in RULES:
        if not re.match(pattern, ANSWERS[key]):
            problems.append(f"{key}={ANSWERS[key]!r}: allowed {allowed}")
    cloud = ANSWERS["cloud_provider"]
    if ANSWERS["compute_type"] not in COMPUTE[cloud]:
        problems.append(f"compute_type={ANSWERS['compute_type']!r}: allowed for {cloud}: {', '.join(COMPUTE[cloud])}")
    pattern, example = REGION[cloud]
    if not re.match(pattern, ANSWERS["region"]):
        problems.append(f"region={ANSWERS['region']!r}: not a {cloud} region ({example})")
    if cloud == "gcp" and not re.match(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", ANSWERS["project_id"]):
        problems.append(f"project_id={ANSWERS['project_id']!r}: 6-30 lowercase letters, digits, '-', starting with a letter")
    report = os.environ.get("DATIVO_TF_HOOK_REPORT")  # set by `dativo-tf init`, which prints them in one line
    if report and problems:
        with open(report, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{problem}\n" for problem in problems))
    else:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


sys.exit(main())
