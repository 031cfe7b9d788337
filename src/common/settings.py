"""Every environment variable the project reads, in one pydantic-settings object.

Nothing else calls `os.environ`. `Settings()` reads the environment when it is called (never
at import), so tests and containers can change it. `.env.example` lists every variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # env_ignore_empty: `export FD_API_KEY=` means unset, not an empty key.
    model_config = SettingsConfigDict(
        env_prefix="FD_", extra="ignore", frozen=True, env_ignore_empty=True
    )

    # Which pipeline config (configs/*.yml). Unset: the stages use configs/default.yml, and
    # the API the config its exported champion was registered with (src/serving/loader.py).
    config: Path | None = None
    # Where the pipeline's outputs go; unset: data/, models/, reports/ and mlruns/ in the repo
    # (src/common/paths.py builds every path from these).
    data_dir: Path | None = None
    models_dir: Path | None = None
    reports_dir: Path | None = None
    mlflow_dir: Path | None = None
    # The API: /predict* need a matching X-API-Key header when set.
    api_key: SecretStr | None = None
    bench_echo: bool = False  # adds /bench/echo, the HTTP stack's ceiling for `make bench`
    log_format: Literal["text", "json"] = "text"
    # gunicorn (app/gunicorn_conf.py)
    bind: str = "127.0.0.1:8000"
    workers: int = Field(2, ge=1)
    timeout: int = Field(60, ge=1)
    graceful_timeout: int = Field(30, ge=1)
    keepalive: int = Field(5, ge=0)
    log_level: str = "info"
    # The monitoring cycle pushes its figures here (python -m src.cycle); unset: no push.
    pushgateway: str | None = None
    # Variables named by other tools, read here too so there is one place to look.
    mlflow_tracking_uri: str | None = Field(None, validation_alias="MLFLOW_TRACKING_URI")
    mlflow_tracking_token: SecretStr | None = Field(None, validation_alias="MLFLOW_TRACKING_TOKEN")
    mlflow_tracking_username: str | None = Field(None, validation_alias="MLFLOW_TRACKING_USERNAME")
    mlflow_tracking_password: SecretStr | None = Field(
        None, validation_alias="MLFLOW_TRACKING_PASSWORD"
    )
    prometheus_multiproc_dir: Path | None = Field(None, validation_alias="PROMETHEUS_MULTIPROC_DIR")
