"""``executor images build|list|prune``: runner images built or listed, derived ones pruned."""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any

import anyio
import click

from .._errors import ImageBuildFailed
from .engine import bounded, connect
from .options import parse_duration, parse_pairs
from .output import EXIT_FAILED, say

__all__ = ["images", "list_images", "version_of"]


def version_of(image: dict[str, Any]) -> str | None:
    """An image's version: its OCI version label, else its highest version-like tag."""
    labels = (image.get("Config") or {}).get("Labels") or image.get("Labels") or {}
    for key in ("org.opencontainers.image.version", "dev.executor.version"):
        if labels.get(key):
            return str(labels[key])
    versions = [
        tag.rsplit(":", 1)[1]
        for tag in image.get("RepoTags") or []
        if re.fullmatch(r"v?\d+(\.\d+)*([-+.].*)?", tag.rsplit(":", 1)[1])
    ]
    return max(versions, default=None)


async def list_images(include_all: bool = False) -> list[dict[str, Any]]:
    """Runner and generator images on the engine: repository, tags, version, id, size; and
    the dependencies images with their requirements."""
    from ..container.deps import DEPS_LABEL

    async with connect() as engine:
        found = await bounded(engine.images.list(), "a request to list images", engine.name)
    prefixes = ("executor/", "executor-deps/") if not include_all else ("executor/", "executor-")
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for image in found:
        for ref in image.get("RepoTags") or []:
            # Podman names local images localhost/NAME (and commits docker.io/NAME); the
            # executor asks for them by the short name, which Podman resolves.
            ref = ref.removeprefix("localhost/").removeprefix("docker.io/")
            repository, _, tag = ref.rpartition(":")
            if not repository.startswith(prefixes):
                continue
            key = (repository, str(image.get("Id")))
            row = rows.setdefault(
                key,
                {
                    "repository": repository,
                    "tags": [],
                    "version": version_of(image),
                    "id": str(image.get("Id", "")).removeprefix("sha256:")[:12],
                    "size_mb": round(int(image.get("Size") or 0) / 1e6, 1),
                    "created": time.strftime(
                        "%Y-%m-%d %H:%M", time.gmtime(int(image.get("Created") or 0))
                    ),
                },
            )
            row["tags"].append(tag)
            if requirements := (image.get("Labels") or {}).get(DEPS_LABEL):
                row["requirements"] = _requirements(requirements)
    return sorted(rows.values(), key=lambda r: (r["repository"], r["tags"]))


def _requirements(label: str) -> str:
    """A dependencies image's requirements, from its label, as one line."""
    try:
        data = json.loads(label)
        return " ".join(data.get("requirements") or []) or str(data.get("file") or "")
    except (ValueError, AttributeError):
        return label


@click.group()
def images() -> None:
    """Build and list the runner images; build dependency images; prune derived images."""


@images.command("build")
@click.argument("targets", nargs=-1)
@click.option("--set", "variables", multiple=True, metavar="VAR=VALUE", help="Bake variable.")
@click.option("--file", "-f", "bake_file", metavar="PATH", help="The bake file to read.")
@click.option("--force", is_flag=True, help="Rebuild even when up to date.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary.")
def images_build(
    targets: tuple[str, ...],
    variables: tuple[str, ...],
    bake_file: str | None,
    force: bool,
    quiet: bool,
) -> None:
    """Build bake targets or groups (default: runners and generators) from docker-bake.hcl."""
    from ..build import DEFAULT_BAKE_FILE, build_images

    def show(line: str) -> None:
        if not quiet or ": built" in line or "up to date" in line or "local base" in line:
            say(line)

    try:
        tags = anyio.run(
            lambda: build_images(
                targets or ("default",),
                bake_file=bake_file or DEFAULT_BAKE_FILE,
                variables=parse_pairs(variables, "--set"),
                progress=show,
                force=force,
            )
        )
    except ImageBuildFailed as exc:
        say(f"images: {exc}\n--- build log tail ---\n{exc.logs}")
        sys.exit(EXIT_FAILED)
    say(f"images: ready: {' '.join(tags)}")


@images.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image.")
@click.option("--all", "include_all", is_flag=True, help="Also base and derived images.")
def images_list(as_json: bool, include_all: bool) -> None:
    """List the executor images on the engine with their versions (dependencies images: their
    requirements)."""
    rows = anyio.run(list_images, include_all)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    if not rows:
        say("no executor images on this engine; build them with `executor images build`")
        return
    header = ("REPOSITORY", "TAGS", "VERSION", "IMAGE ID", "SIZE", "CREATED (UTC)")
    # A dependencies image shows its requirements in the VERSION column.
    table = [
        (
            r["repository"],
            ",".join(r["tags"]),
            r.get("requirements") or r["version"] or "-",
            r["id"],
            f"{r['size_mb']} MB",
            r["created"],
        )
        for r in rows
    ]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        grid = Table(*header, box=None, header_style="bold")
        for line in table:
            grid.add_row(*line)
        Console().print(grid)
        return
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table, strict=False)]
    for line in (header, *table):
        click.echo("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())


@images.command("prune")
@click.option(
    "--older-than",
    "older_than",
    default="0",
    metavar="DURATION",
    help="Only images made longer ago than this (90s, 30m, 12h, 7d; default: all).",
)
@click.option(
    "--base", metavar="IMAGE", help="Only images derived from IMAGE (as the config names it)."
)
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image.")
def images_prune(older_than: str, base: str | None, dry_run: bool, as_json: bool) -> None:
    """Remove the images derived for ContainerConfig.files and .requirements (one per content
    and base image).

    Nothing else removes them. Images a container uses are kept (never forced); an executor
    whose image is removed between calls derives it again on its next call.
    """
    from ..container.images import prune_files_images

    seconds = parse_duration(older_than, "--older-than")

    async def go() -> list[Any]:
        async with connect() as engine:
            steps = prune_files_images(engine, older_than=seconds, base=base, dry_run=dry_run)
            found = []
            while True:  # each step (the listing, one removal) bounded on its own
                try:
                    found.append(await bounded(anext(steps), "an image request", engine.name))
                except StopAsyncIteration:
                    return found

    found = anyio.run(go)
    removed = [image for image in found if image.removed]
    kept = len(found) - len(removed)
    if as_json:
        for image in found:
            click.echo(json.dumps(image._asdict()))
        return
    verb = "would remove" if dry_run else "removed"
    for image in removed:
        click.echo(f"{verb} {image.ref} ({image.id}, from {image.base})")
    say(
        f"images prune: {verb} {len(removed)} derived image(s)"
        + (f"; kept {kept} in use by a container" if kept else "")
    )


@images.command("deps")
@click.argument("requirements", nargs=-1)
@click.option(
    "--runner",
    type=click.Choice(["python", "node"]),
    default="python",
    show_default=True,
    help="The runner whose image gets the requirements.",
)
@click.option("--image", metavar="IMAGE", help="The base image (default: the runner's).")
@click.option(
    "--file",
    "-r",
    "requirements_file",
    metavar="PATH",
    help="A requirements.txt (Python) or package.json with its lock file (Node).",
)
@click.option("--allow-install-scripts", is_flag=True, help="Run npm install scripts.")
@click.option("--build-timeout", default="600s", metavar="DURATION", show_default=True)
def images_deps(
    requirements: tuple[str, ...],
    runner: str,
    image: str | None,
    requirements_file: str | None,
    allow_install_scripts: bool,
    build_timeout: str,
) -> None:
    """Build (or find) the image with REQUIREMENTS installed and print its tag.

    The same image ContainerConfig(requirements=[...]) uses: build it ahead of time, e.g. on
    each node of a cluster. Packages are fetched on this host with its pip/npm settings.
    """
    from .._code import default_image
    from ..container.config import ContainerConfig
    from ..container.deps import deps_image
    from ..engine import MANAGED_LABEL, OWNER_LABEL
    from ..engine.labels import owner_id

    if not requirements and requirements_file is None:
        raise click.UsageError("name requirements, or a file with --file")
    config = ContainerConfig(
        image or default_image(runner),
        requirements=list(requirements),
        requirements_file=requirements_file,
        allow_install_scripts=allow_install_scripts,
        build_timeout=parse_duration(build_timeout, "--build-timeout"),
    )
    labels = {MANAGED_LABEL: "true", OWNER_LABEL: owner_id()}

    async def go() -> str:
        async with connect() as engine:
            base = config.image
            await bounded(engine.images.inspect(base), "a request to inspect an image", engine.name)
            return await deps_image(engine, config, base, labels)

    try:
        tag = anyio.run(go)
    except ImageBuildFailed as exc:
        say(f"images deps: {exc}\n--- installer output tail ---\n{exc.logs}")
        sys.exit(EXIT_FAILED)
    click.echo(tag)
