"""Settings come from the environment, strictly; production values pass check --deploy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from msc_admin.env import env_bool, env_int, env_list, env_secret, env_url

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("0", False), (" Yes ", True), ("off", False)]
)
def test_env_bool_reads_the_usual_spellings(raw: str, value: bool) -> None:
    assert env_bool("X", default=not value, environ={"X": raw}) is value


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: env_bool("DEBUG", default=True, environ={"DEBUG": "maybe"}),
            "DEBUG must be one of",
        ),
        (lambda: env_int("N", 1, environ={"N": "ten"}), "N must be a whole number"),
        (lambda: env_int("N", 1, minimum=5, environ={"N": "2"}), "at least 5"),
        (lambda: env_list("L", [], environ={"L": "a,,b"}), "empty item"),
        (
            lambda: env_url(
                "DATABASE_URL", schemes=("postgres",), environ={"DATABASE_URL": "mysql://x"}
            ),
            "postgres://",
        ),
        (lambda: env_secret("SECRET_KEY", required=True, environ={}), "must be set"),
        (
            lambda: env_secret("SECRET_KEY", required=True, environ={"SECRET_KEY": "short"}),
            "at least 32",
        ),
    ],
)
def test_env_helpers_fail_loudly_on_bad_values(call, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        call()


def test_no_variables_means_the_embedded_default(tmp_path: Path) -> None:
    script = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE']);"
        "print(s.CELERY_TASK_ALWAYS_EAGER);"
        "print(s.CACHES['default']['BACKEND']);"
        "print(s.MAILERS['default']['BACKEND']);"
        "print(s.DEBUG)"
    )
    result = _manage("shell", "--no-imports", "-c", script, env={"MSC_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "True",
        "django.core.cache.backends.locmem.LocMemCache",
        "msc_admin.mail.EmailBackend",  # the console, printed as people read it
        "True",
    ]


def test_the_embedded_default_runs_tasks_in_process_without_broker_noise(tmp_path: Path) -> None:
    """bin/run's terminal: a task enqueued as the code does (on commit) runs at once, nothing
    logs about a broker (kombu's "No hostname was supplied"), nor a line per task."""
    script = (
        "from msc_admin import enqueue, tasks\n"
        "from msc_admin.celery import app\n"
        "print(app.conf.task_always_eager)\n"
        "enqueue.after_commit(tasks.ping)\n"
        "enqueue.after_commit(tasks.ping)\n"
        "print(tasks.ping.apply_async().get())\n"
    )
    result = _manage("shell", "--no-imports", "-c", script, env={"MSC_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "pong"]
    assert "hostname" not in result.stderr and "WARNING" not in result.stderr, result.stderr
    assert "succeeded" not in result.stderr, result.stderr  # no line per task run in-process


def test_workers_log_each_task() -> None:
    """With a broker (production, and this suite), Celery's line for each task stays."""
    import logging

    assert logging.getLogger("celery.app.trace").isEnabledFor(logging.INFO)


def test_database_and_redis_urls_switch_to_postgresql_redis_and_celery() -> None:
    from django.conf import settings

    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    assert settings.CELERY_TASK_ALWAYS_EAGER is False


def test_a_bad_value_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    result = _manage("check", env={"DEBUG": "maybe", "MSC_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "DEBUG must be one of" in result.stderr


def test_production_refuses_to_start_without_secret_encryption_keys() -> None:
    env = {"DEBUG": "false", "SECRET_KEY": PRODUCTION_KEY, "ALLOWED_HOSTS": "msc.example.com"}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "MSC_SECRET_KEYS must be set" in result.stderr


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    result = _manage("check", env={"DEBUG": "false", "ALLOWED_HOSTS": "msc.example.com"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


PRODUCTION_KEY = "k3y-For-Tests-only-9f8e7d6c5b4a3-ZYXWVUTSRQ-0123456789-abcdefghij"
PRODUCTION_SECRET_KEYS = "k1:AsqnH2rRFeVep8QkLFdsf3TruzF1rlSb_70uSo1Ix54="


def _production_env() -> dict[str, str]:
    return {
        "DEBUG": "false",
        "SECRET_KEY": PRODUCTION_KEY,
        "MSC_SECRET_KEYS": PRODUCTION_SECRET_KEYS,
        "ALLOWED_HOSTS": "msc.example.com",
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": os.environ["REDIS_URL"],
        "EMAIL_HOST": "smtp.example.com",
    }


def test_production_values_pass_check_deploy() -> None:
    env = _production_env()
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_seed_demo_refuses_production_unless_forced() -> None:
    env = _production_env()
    result = _manage("seed_demo", env=env)
    assert result.returncode != 0
    assert "refuses to run with DEBUG=false" in result.stderr


def test_production_needs_no_demo_relay_package() -> None:
    """requirements/base.txt (production) has no aiosmtpd; the checks, the demo data and
    everything but the demo relay itself run without it."""
    assert "aiosmtpd" not in (ROOT / "requirements" / "base.txt").read_text()
    assert "aiosmtpd" in (ROOT / "requirements" / "demo.txt").read_text()
    script = (
        "import sys\n"
        "sys.modules['aiosmtpd'] = None  # as if not installed: importing it fails\n"
        "import django\n"
        "django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('check', '--deploy', fail_level='WARNING')\n"
        "import demo.management.commands.seed_demo, channels.demo\n"
        "channels.demo._demo_smtp('acme.test')  # seed_demo's channel data\n"
        "try:\n"
        "    import demo.management.commands.demo_smtp_server\n"
        "except ModuleNotFoundError as missing:\n"
        "    print('relay:', missing)\n"
    )
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**base, **_production_env(), "DJANGO_SETTINGS_MODULE": "msc_admin.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "relay: The demo SMTP relay needs aiosmtpd" in result.stdout
    assert "requirements/demo.txt" in result.stdout


def test_the_django_floor_has_what_the_settings_use() -> None:
    import tomllib

    from django.conf import settings

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (django,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("Django>=")]
    floor = tuple(int(part) for part in django.split(">=")[1].split(",")[0].split("."))
    assert hasattr(settings, "MAILERS")  # Django 6.1 reads mail settings from MAILERS
    assert floor >= (6, 1), django
