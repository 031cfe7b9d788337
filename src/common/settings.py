"""Every environment variable the project reads, in one pydantic-settings object.

Nothing else calls `os.environ`. `Settings()` reads the environment when it is called (never
at import), so tests and containers can change it. `.env.example` lists every variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The serving fast paths (src/common/config.py `FastPaths`), as FD_FAST_PATHS names them.
FastPathName = Literal["lightgbm_c_api", "registry_rest", "batch_parse"]


class SettingsError(ValueError):
    """A bad environment value: one line naming each variable and what it accepts."""


class Settings(BaseSettings):
    """Raises SettingsError, not pydantic's many-line ValidationError, on a bad value."""

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
    # The serving fast paths to turn on, comma-separated (e.g. "lightgbm_c_api,batch_parse");
    # "none" turns every one off. Unset: the config's `serve.fast_paths` (all off by
    # default). The production profile (app/gunicorn_conf.py, the image, K8s) sets it.
    fast_paths: Annotated[list[FastPathName] | None, NoDecode] = None
    # gunicorn (app/gunicorn_conf.py)
    bind: str = "127.0.0.1:8000"
    workers: int = Field(2, ge=1)
    timeout: int = Field(60, ge=1)
    graceful_timeout: int = Field(30, ge=1)
    keepalive: int = Field(5, ge=0)
    log_level: str = "info"
    # The online feature store (src/featurestore/online.py) in Redis, e.g.
    # redis://127.0.0.1:6379/0; unset: the SQLite file data/online/features.sqlite.
    redis_url: str | None = None
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

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError("; ".join(map(bad_value, exc.errors()))) from None

    @field_validator("fast_paths", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            names = [name.strip() for name in value.split(",")]
            return [] if names == ["none"] else names
        return value


def bad_value(error: Any) -> str:  # pydantic's ErrorDetails
    """`FD_WORKERS='0': Input should be greater than or equal to 1`: the variable as the
    environment names it (a field's alias, else FD_ and its name)."""
    name = str(error["loc"][0])
    field = Settings.model_fields.get(name)
    alias = field.validation_alias if field else name  # the error may name the alias
    variable = alias if isinstance(alias, str) else f"FD_{name.upper()}"
    return f"{variable}={error['input']!r}: {error['msg']}"
