"""Docker helpers for the compose cluster suite.

- engine_problem(): why no Docker engine can run here (None when one answers).
- compose_command(): `docker compose` (the v2 plugin) when present, else Debian's
  `docker-compose` (v1); both read the same compose.yaml.
- ensure_base_image(): makes `debian:bookworm-slim` with debootstrap when it is missing (no
  image can be pulled here) and keeps it: later runs reuse it.
- Compose: one project (unique name) driven through the compose command, always torn down
  with `down -v --remove-orphans`.
Every command runs with a timeout; nothing is stopped by name, only by container id or
through the project.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "debian:bookworm-slim"
DEBIAN_MIRROR = os.environ.get("CHAT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBIAN_SECURITY = os.environ.get("CHAT_DEBIAN_SECURITY", "http://deb.debian.org/debian-security")


def run(argv, timeout=60, check=True, env=None, input=None, cwd=None):
    """subprocess.run with a timeout, captured text output; raises with the output on failure."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                       input=input, stdin=None if input is not None else subprocess.DEVNULL,
                       cwd=cwd)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited with {p.returncode}:\n"
                           f"{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p


def docker_bin():
    return shutil.which("docker")


def engine_problem():
    """None when a Docker engine answers; else a sentence saying why not."""
    if docker_bin() is None:
        return "no docker client installed (Debian: docker.io)"
    try:
        p = run([docker_bin(), "info", "--format", "{{json .ServerVersion}}"], timeout=30,
                check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"docker info failed: {e}"
    if p.returncode != 0 or not p.stdout.strip() or p.stdout.strip() == '""':
        return "no Docker engine answers (docker info: " + (p.stderr.strip()[-300:] or "?") + ")"
    return None


def compose_command():
    """argv prefix of a working compose, or None."""
    d = docker_bin()
    if d:
        p = run([d, "compose", "version"], timeout=30, check=False)
        if p.returncode == 0:
            return [d, "compose"]
    dc = shutil.which("docker-compose")
    if dc:
        p = run([dc, "version"], timeout=30, check=False)
        if p.returncode == 0:
            return [dc]
    return None


def image_exists(name):
    return run([docker_bin(), "image", "inspect", name], timeout=30, check=False).returncode == 0


def _sources(dist):
    """deb822 sources like the official image's: main, updates and security."""
    return (f"Types: deb\nURIs: {DEBIAN_MIRROR}\nSuites: {dist} {dist}-updates\n"
            "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            f"Types: deb\nURIs: {DEBIAN_SECURITY}\nSuites: {dist}-security\n"
            "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")


def ensure_base_image(log=print, dist="bookworm", name=BASE_IMAGE, timeout=1200):
    """Make `name` with debootstrap (minbase) unless it exists; returns the seconds spent."""
    if image_exists(name):
        return 0.0
    t0 = time.monotonic()
    if shutil.which("debootstrap") is None:
        if os.geteuid() != 0:
            raise RuntimeError(f"{name} is missing and debootstrap is not installed: "
                               "sudo apt-get install -y debootstrap")
        log("installing debootstrap")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "debootstrap"],
            timeout=600, check=False, env=env)
        if shutil.which("debootstrap") is None:
            run(["apt-get", "update", "-q"], timeout=600, env=env)
            run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "debootstrap"],
                timeout=600, env=env)
    if os.geteuid() != 0:
        raise RuntimeError(f"{name} is missing; making it with debootstrap needs root")
    log(f"making {name} with debootstrap from {DEBIAN_MIRROR} (once; cached afterwards)")
    with tempfile.TemporaryDirectory(prefix="bookworm-rootfs-") as tmp:
        root = Path(tmp) / "root"
        run(["debootstrap", "--variant=minbase", dist, str(root), DEBIAN_MIRROR],
            timeout=timeout)
        # Like the official slim image: deb822 sources, no package lists or caches inside.
        (root / "etc/apt/sources.list").unlink(missing_ok=True)
        (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
        (root / "etc/apt/sources.list.d/debian.sources").write_text(_sources(dist))
        (root / "etc/apt/apt.conf.d/docker-clean").write_text(
            'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
            '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
            'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
            '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
            'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n')
        (root / "etc/apt/apt.conf.d/docker-no-languages").write_text(
            'Acquire::Languages "none";\n')
        for sub in ("var/lib/apt/lists", "var/cache/apt/archives"):
            d = root / sub
            for p in d.glob("*"):
                if p.is_file():
                    p.unlink()
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."],
                               stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            p = subprocess.run([docker_bin(), "import",
                                "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:"
                                "/usr/sbin:/usr/bin:/sbin:/bin",
                                "--change", 'CMD ["bash"]', "-", name],
                               stdin=tar.stdout, capture_output=True, text=True,
                               timeout=timeout)
        finally:
            tar.stdout.close()
            tar.wait(timeout=60)
        if p.returncode != 0 or tar.returncode != 0:
            raise RuntimeError(f"docker import failed: {p.stderr[-2000:]}")
    log(f"{name} made in {time.monotonic() - t0:.0f}s")
    return time.monotonic() - t0


class Compose:
    """One compose project from the repository's compose.yaml."""

    def __init__(self, root, project, env, command=None, log=print):
        """env: the whole environment compose runs with (compose.yaml reads CHAT_* from it)."""
        self.root = Path(root)
        self.project = project
        self.command = command or compose_command()
        self.env = dict(env)
        self.log = log

    def argv(self, *args):
        return [*self.command, "-p", self.project, "-f", str(self.root / "compose.yaml"), *args]

    def __call__(self, *args, timeout=120, check=True):
        return run(self.argv(*args), timeout=timeout, check=check, env=self.env, cwd=self.root)

    def up(self, scale=3, timeout=1800):
        t0 = time.monotonic()
        p = run(self.argv("up", "-d", "--build", "--scale", f"gateway={scale}"),
                timeout=timeout, env=self.env, cwd=self.root, check=False)
        if p.returncode != 0:
            raise RuntimeError(f"compose up failed ({p.returncode}):\n{p.stdout[-6000:]}\n"
                               f"{p.stderr[-6000:]}")
        return time.monotonic() - t0

    def down(self):
        return self("down", "-v", "--remove-orphans", "-t", "5", timeout=180, check=False)

    def ids(self, service):
        p = self("ps", "-q", service, timeout=60)
        return [line.strip() for line in p.stdout.splitlines() if line.strip()]

    def logs(self, tail=200):
        p = self("logs", "--no-color", "--tail", str(tail), timeout=60, check=False)
        return p.stdout + p.stderr


def inspect(cid):
    p = run([docker_bin(), "inspect", cid], timeout=30)
    return json.loads(p.stdout)[0]


def docker(*args, timeout=60, check=True):
    return run([docker_bin(), *args], timeout=timeout, check=check)


def exec_in(cid, *argv, timeout=30, check=True):
    return docker("exec", cid, *argv, timeout=timeout, check=check)
