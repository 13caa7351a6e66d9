#!/usr/bin/env python3
"""The promptgate GitHub Action's logic: find the prompts a pull request changes and their new
versions, gate each against its baseline, post one pull-request comment (created once, then
updated in place) and the job summary, and exit with the gate's verdict.

Standard library only, so it runs on any runner with Python 3.8+. Everything it reads comes
from the environment GitHub Actions sets (GITHUB_*), and from the action's inputs (PG_*); the
GitHub REST API base is GITHUB_API_URL, which the tests point at a fake server on 127.0.0.1.

Exit codes follow promptgate's: 0 PASS (or nothing to gate), 1 FAIL, 2 a configuration
problem, 3 INCONCLUSIVE (0 when PG_ALLOW_INCONCLUSIVE is true), 4 INVALID or an infrastructure
failure.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

MARKER = "<!-- promptgate-gate -->"
# Worst first: the job exits as the gate of the worst verdict did.
ORDER = ["FAIL", "ERROR", "INVALID", "INCONCLUSIVE", "PASS"]


def env(name, default=""):
    value = os.environ.get(name, "")
    return value if value != "" else default


def log(message):
    print(message, file=sys.stderr, flush=True)


def run(args, cwd=None, check=True):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(args)}` exited {proc.returncode}: {proc.stderr.strip()}"
        )
    return proc


def promptgate():
    return env("PROMPTGATE", "promptgate")


def prompts_dir(repo_dir):
    """`prompts_dir` of promptgate.yaml (a top-level scalar), default `prompts`."""
    try:
        with open(os.path.join(repo_dir, "promptgate.yaml"), encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^prompts_dir:\s*['\"]?([^'\"#\s]+)", line)
                if m:
                    return m.group(1).rstrip("/")
    except OSError:
        pass
    return "prompts"


def versions(repo_dir):
    """{prompt: [version ids, newest first]} as `promptgate list` sees the repository."""
    out = {}
    listing = json.loads(run([promptgate(), "-C", repo_dir, "list", "--json"]).stdout or "[]")
    for p in listing:
        name = p["prompt"]
        detail = json.loads(
            run([promptgate(), "-C", repo_dir, "list", name, "--json"]).stdout
        )
        out[name] = [
            {"id": v["id"], "number": v["number"], "file": v["file"]}
            for v in detail["versions"]
        ]
    return out


def pull_request():
    """The pull request's event payload (empty outside a pull request)."""
    path = env("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            event = json.load(f)
    except (OSError, ValueError):
        return {}
    return event.get("pull_request") or {}


def changed_targets(repo_dir, base_sha):
    """The prompts the diff from `base_sha` touches and the version to gate for each:
    [(prompt, candidate id or None, note)]."""
    top = run(["git", "-C", repo_dir, "rev-parse", "--show-toplevel"]).stdout.strip()
    rel_dir = os.path.relpath(os.path.realpath(repo_dir), os.path.realpath(top))
    rel_dir = "" if rel_dir == "." else rel_dir.rstrip("/") + "/"
    changed = run(
        ["git", "-C", top, "diff", "--name-only", f"{base_sha}...HEAD"]
    ).stdout.split()
    pdir = rel_dir + prompts_dir(repo_dir) + "/"
    touched = {}
    for path in changed:
        if not path.startswith(pdir):
            continue
        rest = path[len(pdir):]
        if "/" not in rest:
            continue
        name, file = rest.rsplit("/", 1)
        touched.setdefault(name, set()).add(file)
    if not touched:
        return []
    head = versions(repo_dir)
    # The registry as it was at the base, from a worktree of it.
    base = {}
    with tempfile.TemporaryDirectory() as tmp:
        wt = os.path.join(tmp, "base")
        run(["git", "-C", top, "worktree", "add", "--detach", wt, base_sha])
        try:
            if os.path.exists(os.path.join(wt, rel_dir, "promptgate.yaml")):
                base = versions(os.path.join(wt, rel_dir))
        finally:
            run(["git", "-C", top, "worktree", "remove", "--force", wt], check=False)
    targets = []
    for name in sorted(touched):
        now = head.get(name, [])
        before = {v["id"] for v in base.get(name, [])}
        registered_files = {v["file"] for v in now}
        unregistered = sorted(
            f
            for f in touched[name]
            if re.fullmatch(r".+\.ya?ml", f)
            and f not in ("registry.yaml", "suite.yaml")
            and f not in registered_files
        )
        if unregistered:
            targets.append(
                (
                    name,
                    None,
                    f"`{pdir}{name}/{unregistered[0]}` is not registered: run "
                    f"`promptgate add {name}` and commit `registry.yaml` and `audit.jsonl`",
                )
            )
            continue
        new = [v for v in now if v["id"] not in before]
        if new:
            newest = max(new, key=lambda v: v["number"])
            targets.append((name, newest["id"], ""))
        elif now:
            targets.append((name, now[0]["id"], "no new version: the suite or its files changed"))
    return targets


def gate(repo_dir, name, candidate, baseline, out_dir, reports, extra):
    """Run one gate; returns (verdict, exit code, Markdown, output text)."""
    os.makedirs(out_dir, exist_ok=True)
    formats = ",".join(sorted(set(["json", "md"] + [f for f in reports.split(",") if f])))
    args = [
        promptgate(), "-C", repo_dir, "gate", name,
        "--candidate", candidate, "--baseline", baseline,
        "--report", formats, "--out", out_dir, "--quiet",
    ] + extra
    proc = run(args, check=False)
    verdict = "ERROR"
    report = os.path.join(out_dir, "report.json")
    if os.path.exists(report):
        try:
            with open(report, encoding="utf-8") as f:
                verdict = json.load(f)["decision"]["verdict"]
        except (OSError, ValueError, KeyError):
            verdict = "ERROR"
    md_path = os.path.join(out_dir, "report.md")
    if verdict != "ERROR" and os.path.exists(md_path):
        with open(md_path, encoding="utf-8") as f:
            md = f.read()
    else:
        md = (
            f"### ⛔ promptgate could not gate `{name}` ({candidate} vs {baseline})\n\n"
            f"```\n{(proc.stderr or proc.stdout).strip()[:4000]}\n```\n"
        )
    return verdict, proc.returncode, md, proc.stdout + proc.stderr


class GitHub:
    """The few REST calls the action makes, with the job's token."""

    def __init__(self, api, repository, token):
        self.api = api.rstrip("/")
        self.repository = repository
        self.token = token

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.api + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "Content-Type": "application/json",
                "User-Agent": "promptgate-action",
            },
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
            return json.loads(text) if text else None

    def upsert_comment(self, number, body):
        """Update the comment carrying MARKER, or create it: one comment per pull request."""
        page = 1
        while True:
            comments = self.call(
                "GET",
                f"/repos/{self.repository}/issues/{number}/comments?per_page=100&page={page}",
            ) or []
            for c in comments:
                if MARKER in (c.get("body") or ""):
                    self.call(
                        "PATCH",
                        f"/repos/{self.repository}/issues/comments/{c['id']}",
                        {"body": body},
                    )
                    return "updated", c["id"]
            if len(comments) < 100:
                break
            page += 1
        created = self.call(
            "POST", f"/repos/{self.repository}/issues/{number}/comments", {"body": body}
        )
        return "created", (created or {}).get("id")


def append(path, text):
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)


def main():
    repo_dir = env("PG_DIR", ".")
    baseline = env("PG_BASELINE", "production")
    reports = env("PG_REPORTS", "md,json,junit,html")
    out_root = env("PG_OUT", "promptgate-report")
    allow_inconclusive = env("PG_ALLOW_INCONCLUSIVE", "false") == "true"
    extra = env("PG_ARGS").split()
    pr = pull_request()

    if env("PG_PROMPT"):
        candidate = env("PG_CANDIDATE")
        targets = [(env("PG_PROMPT"), candidate or None,
                    "" if candidate else "no candidate given")]
    else:
        base_sha = env("PG_BASE_SHA") or (pr.get("base") or {}).get("sha", "")
        if not base_sha:
            log("::error::promptgate: no prompt given and no pull request to diff: "
                "set `prompt` and `candidate`, or run on `pull_request`")
            return 2
        try:
            targets = changed_targets(repo_dir, base_sha)
        except RuntimeError as e:
            log(f"::error::promptgate: {e}")
            return 2

    sections, results = [], []
    for name, candidate, note in targets:
        if candidate is None:
            sections.append(f"### ⛔ `{name}`: {note}\n")
            results.append({"prompt": name, "verdict": "ERROR", "exit": 2, "note": note})
            continue
        out_dir = os.path.join(out_root, name.replace("/", "__"))
        verdict, code, md, text = gate(repo_dir, name, candidate, baseline, out_dir,
                                       reports, extra)
        log(text)
        if note:
            md = f"_{note}_\n\n" + md
        sections.append(md)
        results.append({"prompt": name, "candidate": candidate, "verdict": verdict,
                        "exit": code, "report": os.path.join(out_dir, "report.json")})

    if results:
        worst = min((r["verdict"] for r in results), key=ORDER.index)
    else:
        worst = "PASS"
        sections.append("No prompt changed in this pull request: nothing to gate.\n")
    body = MARKER + "\n" + "\n---\n\n".join(sections)
    append(env("GITHUB_STEP_SUMMARY"), body + "\n")
    append(env("GITHUB_OUTPUT"),
           f"verdict={worst}\nresults={json.dumps(results)}\n")

    token, number = env("PG_TOKEN") or env("GITHUB_TOKEN"), pr.get("number")
    if env("PG_COMMENT", "true") == "true" and token and number:
        gh = GitHub(env("GITHUB_API_URL", "https://api.github.com"),
                    env("GITHUB_REPOSITORY"), token)
        try:
            how, cid = gh.upsert_comment(number, body)
            log(f"promptgate: {how} comment {cid} on #{number}")
        except (urllib.error.URLError, OSError, ValueError) as e:
            # The gate's verdict stands; a comment that could not be posted is a warning.
            log(f"::warning::promptgate: could not post the pull-request comment: {e}")

    code = next((r["exit"] for r in results if r["verdict"] == worst), 0) or (
        0 if worst == "PASS" else 2
    )
    if worst == "INCONCLUSIVE" and allow_inconclusive:
        log("promptgate: INCONCLUSIVE (allowed)")
        code = 0
    elif worst != "PASS":
        log(f"::error::promptgate: {worst}")
    return code


if __name__ == "__main__":
    sys.exit(main())
