"""``make audit``: every pin of requirements.txt against the package index's vulnerability data.

The package index's JSON API carries, for each release, the known vulnerabilities (OSV's
advisories) that affect it: ``<api>/<name>/<version>/json`` for one release and
``<api>/<name>/json`` for the project, whose list is that of its newest release. The index
is the one pip or uv is configured with (``PIP_INDEX_URL``, ``UV_INDEX_URL`` /
``UV_DEFAULT_INDEX``, ``pip config get global.index-url``), else pip's own default: no
address is written here.

Each pin is asked for by its release; where the index does not serve per-release answers
(some mirrors and proxies answer only the project), the project's answer is used for a pin
that *is* the newest release. A pin older than that cannot be judged: it is *unverifiable*.

The audit fails (exit 1), saying why, when:

- the index cannot be reached or answers with an error (nothing is taken as "no
  vulnerabilities" for want of an answer);
- a pin is not an exact ``name==version`` or the index does not know it;
- a pin has a known vulnerability not accepted in the allowlist.

An unverifiable pin is never passed silently: each is printed as NOT CHECKED, with the
allowlist's reason when it has one (``"name==version"``), or flagged as new since the
allowlist was written. It does not fail the audit by itself: any upstream release makes
some pin unverifiable, and the verdict must not change with the day a release appears.

The allowlist (``.ci/audit-allowlist.toml``) gives a reason for each thing it accepts::

    [vulnerabilities.GHSA-xxxx-xxxx-xxxx]   # an advisory id or one of its aliases
    package = "name"
    reason = "why this pin stays for now"

    [unverifiable]
    "name==1.2.3" = "why this pin is older than the newest release"

An entry keyed by the pinned version stops matching once the pin moves: a new pin is
judged afresh. Entries that matched nothing are listed, so stale ones can be removed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

# Standard library only: the audit runs before (and without) the project's environment.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = PROJECT_ROOT / "requirements.txt"
ALLOWLIST = PROJECT_ROOT / ".ci" / "audit-allowlist.toml"
WORKERS = 24
TRIES = 3


class AuditError(RuntimeError):
    """The audit could not be carried out (no index, unreadable inputs): never a pass."""


@dataclass(frozen=True)
class Pin:
    name: str  # normalized (PEP 503)
    version: str
    line: int


@dataclass(frozen=True)
class Vulnerability:
    id: str
    aliases: tuple[str, ...]
    fixed_in: tuple[str, ...]
    summary: str
    link: str

    @property
    def ids(self) -> set[str]:
        return {self.id, *self.aliases}


@dataclass
class PinResult:
    pin: Pin
    vulnerabilities: list[Vulnerability] = field(default_factory=list)
    source: str = ""  # "release" or "project"
    latest: str | None = None
    unverifiable: bool = False
    error: str | None = None  # unreachable, unknown package, bad answer


@dataclass
class Allowlist:
    vulnerabilities: dict[str, dict[str, str]] = field(default_factory=dict)
    unverifiable: dict[str, str] = field(default_factory=dict)


@dataclass
class Report:
    results: list[PinResult]
    skipped: list[str]  # requirement lines that are not exact pins
    allowlist: Allowlist

    @property
    def errors(self) -> list[PinResult]:
        return [r for r in self.results if r.error]

    @property
    def checked(self) -> list[PinResult]:
        return [r for r in self.results if not r.error and not r.unverifiable]

    def accepted(self, result: PinResult, vuln: Vulnerability) -> str | None:
        for vid in sorted(vuln.ids):
            entry = self.allowlist.vulnerabilities.get(vid)
            if entry and normalize(entry.get("package", "")) == result.pin.name:
                return entry["reason"]
        return None

    @property
    def found(self) -> list[tuple[PinResult, Vulnerability, str | None]]:
        return [(r, v, self.accepted(r, v)) for r in self.checked for v in r.vulnerabilities]

    @property
    def unverifiable(self) -> list[tuple[PinResult, str | None]]:
        results = [r for r in self.results if r.unverifiable and not r.error]
        return [(r, self.allowlist.unverifiable.get(key(r.pin))) for r in results]

    @property
    def unused_allowlist(self) -> list[str]:
        used_vulns = {vid for r, v, reason in self.found if reason for vid in v.ids}
        used_pins = {key(r.pin) for r, reason in self.unverifiable if reason}
        return [
            *(
                f"vulnerabilities.{v}"
                for v in self.allowlist.vulnerabilities
                if v not in used_vulns
            ),
            *(f"unverifiable.{p}" for p in self.allowlist.unverifiable if p not in used_pins),
        ]

    @property
    def failures(self) -> list[str]:
        out = [f"not an exact pin, cannot be audited: {line}" for line in self.skipped]
        out += [f"{key(r.pin)}: {r.error}" for r in self.errors]
        out += [
            f"{key(r.pin)}: {v.id} ({', '.join(v.aliases) or 'no alias'}) "
            f"fixed in {', '.join(v.fixed_in) or 'no release yet'}: {v.summary} {v.link}"
            for r, v, reason in self.found
            if reason is None
        ]
        return out

    @property
    def passed(self) -> bool:
        return bool(self.results) and not self.failures


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def key(pin: Pin) -> str:
    return f"{pin.name}=={pin.version}"


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#\\]+)")


def parse_requirements(text: str) -> tuple[list[Pin], list[str]]:
    """The exact pins of a requirements file, and the requirement lines that are not."""
    pins, skipped = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-", "--")) or raw.startswith((" ", "\t")):
            continue  # comments, options (-r, --hash continuations), uv's "# via" lines
        match = _PIN.match(line)
        if match and "*" not in match.group(3):
            pins.append(Pin(normalize(match.group(1)), match.group(3), number))
        else:
            skipped.append(line)
    return pins, skipped


def load_allowlist(path: Path) -> Allowlist:
    if not path.exists():
        return Allowlist()
    data = tomllib.loads(path.read_text())
    vulns = data.get("vulnerabilities", {})
    pins = data.get("unverifiable", {})
    for vid, entry in vulns.items():
        if not isinstance(entry, dict) or not entry.get("package") or not entry.get("reason"):
            raise AuditError(f"{path}: vulnerabilities.{vid} needs a package and a reason")
    for pin, reason in pins.items():
        if "==" not in pin or not isinstance(reason, str) or not reason.strip():
            raise AuditError(f'{path}: unverifiable entries are "name==version" = "reason"')
    return Allowlist(vulns, {f"{normalize(p.split('==')[0])}=={p.split('==')[1]}": r
                             for p, r in pins.items()})  # fmt: skip


def index_url(environ: dict[str, str] | None = None) -> str:
    """The package index pip or uv is configured with, else pip's default."""
    environ = os.environ if environ is None else environ
    for name in ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX"):
        if environ.get(name):
            return environ[name].split()[0]
    configured = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
        capture_output=True,
        text=True,
        env={**environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    if configured.returncode == 0 and configured.stdout.strip():
        return configured.stdout.strip().split()[0]
    from pip._internal.models.index import PyPI

    return PyPI.simple_url


def json_api(index: str) -> str:
    """The JSON API beside a simple index: ``<root>/simple`` -> ``<root>/pypi``."""
    if not index.startswith(("http://", "https://")):
        raise AuditError(f"the package index {redact(index)!r} has no JSON API (not http)")
    root = index.rstrip("/")
    root = root[: -len("/simple")] if root.endswith("/simple") else root
    return f"{root}/pypi"


Fetch = Callable[[str], "dict | None"]  # None: 404


def http_fetch(url: str, timeout: float = 30) -> dict | None:
    """GET a JSON document; None for 404; an error (after retries) for anything else."""
    last: Exception | None = None
    for attempt in range(TRIES):
        try:
            request = urllib.request.Request(url, headers={"Accept": "application/json"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            last = error
            if error.code < 500 and error.code != 429:
                break
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as error:
            last = error
        time.sleep(0.5 * (attempt + 1))
    raise AuditError(f"{redact(url)}: {last}")


def redact(url: str) -> str:
    """``url`` without the credentials an index address may carry (user:token@host)."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def vulnerabilities(document: dict) -> list[Vulnerability]:
    """The advisories of a JSON API answer, withdrawn ones left out."""
    if "vulnerabilities" not in document:
        raise AuditError("the answer carries no vulnerabilities field")
    return [
        Vulnerability(
            id=str(v["id"]),
            aliases=tuple(v.get("aliases") or ()),
            fixed_in=tuple(v.get("fixed_in") or ()),
            summary=" ".join(str(v.get("summary") or v.get("details") or "").split())[:200],
            link=str(v.get("link") or ""),
        )
        for v in document["vulnerabilities"]
        if not v.get("withdrawn")
    ]


def probe(pin: Pin, api: str, fetch: Fetch) -> bool:
    """Whether the index answers per release (asked once, with the first pin); one clear
    failure when it cannot be reached at all, rather than one per pin."""
    try:
        if fetch(f"{api}/{pin.name}/{pin.version}/json") is not None:
            return True
        fetch(f"{api}/{pin.name}/json")
    except AuditError as error:
        raise AuditError(
            f"the package index's vulnerability data cannot be reached: {error}"
        ) from error
    return False


def check_pin(pin: Pin, api: str, fetch: Fetch, per_release: bool = True) -> PinResult:
    result = PinResult(pin)
    try:
        release = fetch(f"{api}/{pin.name}/{pin.version}/json") if per_release else None
        if release is not None:
            result.source, result.vulnerabilities = "release", vulnerabilities(release)
            result.latest = release.get("info", {}).get("version")
            return result
        project = fetch(f"{api}/{pin.name}/json")
        if project is None:
            result.error = "unknown to the package index"
            return result
        result.latest = project.get("info", {}).get("version")
        if pin.version not in project.get("releases", {pin.version: None}):
            result.error = f"the index lists no release {pin.version}"
        elif result.latest == pin.version:
            result.source, result.vulnerabilities = "project", vulnerabilities(project)
        else:
            result.unverifiable = True
    except AuditError as error:
        result.error = str(error)
    except (KeyError, TypeError, AttributeError) as error:
        result.error = f"unexpected answer: {error!r}"
    return result


def audit(
    requirements: Path = REQUIREMENTS,
    allowlist: Path = ALLOWLIST,
    api: str | None = None,
    fetch: Fetch = http_fetch,
    workers: int = WORKERS,
) -> Report:
    pins, skipped = parse_requirements(requirements.read_text())
    if not pins:
        raise AuditError(f"{requirements} pins nothing")
    accepted = load_allowlist(allowlist)
    api = api or json_api(index_url())
    per_release = probe(pins[0], api, fetch)
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda pin: check_pin(pin, api, fetch, per_release), pins))
    return Report(results, skipped, accepted)


def render(report: Report) -> str:
    checked = report.checked
    by_source = {s: sum(r.source == s for r in checked) for s in ("release", "project")}
    found = report.found
    unverifiable = report.unverifiable
    lines = [
        f"audit: {len(report.results)} pins; {len(checked)} checked against the index's "
        f"vulnerability data ({by_source['release']} by release, {by_source['project']} "
        f"newest releases by project); {len(unverifiable)} unverifiable; "
        f"{len(report.errors) + len(report.skipped)} could not be audited",
        f"vulnerabilities: {len(found)} found, {sum(1 for *_, why in found if why)} accepted "
        f"in the allowlist",
    ]
    for r, v, why in found:
        if why:
            lines.append(f"  accepted {key(r.pin)} {v.id}: {why}")
    accepted = [(r, why) for r, why in unverifiable if why]
    if accepted:
        lines.append(
            f"NOT CHECKED ({len(accepted)} pins older than their newest release; the index "
            "answers for the newest only), accepted in the allowlist:"
        )
        lines += [f"  {key(r.pin)} (newest {r.latest}): {why}" for r, why in accepted]
    unlisted = [r for r, why in unverifiable if not why]
    if unlisted:
        lines.append(
            f"NOT CHECKED ({len(unlisted)} pins older than their newest release, NOT in the "
            "allowlist: a release came out since it was written; `make lock`, or list them):"
        )
        lines += [
            f"  {key(r.pin)}: unverifiable (the index answers for the newest release, "
            f"{r.latest}, only)"
            for r in unlisted
        ]
    for entry in report.unused_allowlist:
        lines.append(f"allowlist entry matched nothing (remove it?): {entry}")
    failures = report.failures
    if failures:
        lines.append(f"AUDIT FAILED: {len(failures)} problem(s)")
        lines += [f"  {failure}" for failure in failures]
    else:
        lines.append(
            f"audit passed: {len(checked)} pins checked, no vulnerability outside the "
            f"allowlist; {len(unverifiable)} pins NOT checked ({len(accepted)} allowlisted, "
            f"{len(unlisted)} new since the allowlist)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audit", description=__doc__.split("\n")[0])
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    parser.add_argument("--allowlist", type=Path, default=ALLOWLIST)
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        report = audit(args.requirements, args.allowlist)
    except AuditError as error:
        print(f"AUDIT FAILED: {error}", file=sys.stderr)
        return 1
    print(render(report))
    print(f"({time.monotonic() - started:.1f}s)")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
