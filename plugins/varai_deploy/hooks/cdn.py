"""The widget CDN: a GCS bucket behind a public URL, through the Google provider's ``GCSHook``.

Connection ``varai_cdn`` (conn_type ``google_cloud_platform``), extras beside the provider's own
credential fields: ``bucket`` (required), ``public_url`` (required: the CDN base URL merchants load
the script from, e.g. ``https://cdn.varai.ai``), ``api_endpoint`` (optional: a storage API other than
Google's, the sandbox's emulator) and ``project``. The sandbox's connection is anonymous
(``is_anonymous: true``); staging and production use the provider's usual key or workload identity.

Versioned objects are immutable: :meth:`CdnHook.put_immutable` never overwrites different bytes and
they are cached for a year. Aliases (``latest``) move with :meth:`CdnHook.put_alias` and are cached
for five minutes, so a merchant's page picks up a release that soon.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Literal, NamedTuple
from urllib.parse import quote, urlsplit

from varai_deploy.hooks.gcs_endpoint import EndpointGCSHook
from varai_deploy.widgets.publishing import PublishAuthError, PublishConflictError, PublishError

if TYPE_CHECKING:
    from google.cloud.storage import Blob, Bucket

DESTINATION = "cdn"
#: Seconds per HTTP request, and for all retries of one call: a storage API that is down fails the
#: task in about a minute, naming the connection, instead of retrying for the client's default two.
REQUEST_TIMEOUT = 30.0
RETRY_TIMEOUT = 60.0
#: How browsers and edges may cache what the CDN serves: a version's objects never change, an alias does.
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
ALIAS_CACHE_CONTROL = "public, max-age=300"
#: Path segments naming an alias rather than a version (``widgets/html/latest/js/...``).
ALIASES = frozenset({"latest"})

Written = Literal["published", "unchanged"]


class Stored(NamedTuple):
    """An object's metadata (``metadata``: its custom ``x-goog-meta-*`` pairs)."""

    content_type: str | None
    cache_control: str | None
    generation: int | None
    metadata: dict[str, str]


def expected_cache_control(url_or_object: str) -> str:
    """The Cache-Control a published CDN object (URL or object name) must be served with."""
    segments = urlsplit(url_or_object).path.split("/")
    return ALIAS_CACHE_CONTROL if ALIASES.intersection(segments) else IMMUTABLE_CACHE_CONTROL


class CdnHook(EndpointGCSHook):
    """Publish and read the widget's objects in the CDN bucket; errors are :class:`PublishError`\\ s.

    ``channel`` (html, shopify) only names the widget channel in error messages.
    """

    conn_name_attr = "gcp_conn_id"
    default_conn_name = "varai_cdn"
    conn_type = "google_cloud_platform"
    hook_name = "VarAI widget CDN"

    def __init__(self, gcp_conn_id: str = default_conn_name, *, channel: str = "html", **kwargs) -> None:
        from airflow.sdk.exceptions import AirflowNotFoundException

        self.channel = channel
        try:
            super().__init__(gcp_conn_id=gcp_conn_id, **kwargs)
        except AirflowNotFoundException:
            raise PublishError(
                f"{channel} -> cdn: the Airflow connection {gcp_conn_id!r} is not defined; add it "
                "(conn_type google_cloud_platform, extras bucket, public_url and credentials)",
                channel=channel,
                destination=DESTINATION,
            ) from None

    # -- configuration ----------------------------------------------------------------------
    @property
    def bucket(self) -> str:
        return self._required_extra("bucket", "the CDN bucket's name")

    def public_url(self, object_name: str) -> str:
        """The URL a merchant's browser loads ``object_name`` from."""
        base = self._required_extra("public_url", "the CDN base URL merchants use, e.g. https://cdn.varai.ai")
        return f"{base.rstrip('/')}/{quote(object_name)}"

    def _required_extra(self, name: str, meaning: str) -> str:
        value = self._get_field(name)
        if not value:
            raise PublishError(
                f"{self.channel} -> cdn: the Airflow connection {self.gcp_conn_id!r} has no extra {name!r} ({meaning})",
                channel=self.channel,
                destination=DESTINATION,
            )
        return str(value)

    # -- reading ------------------------------------------------------------------------------
    def read(self, object_name: str, *, channel: str | None = None) -> bytes | None:
        """The object's bytes, or None when there is no such object (a missing bucket raises)."""
        found = self._fetch(object_name, channel or self.channel)
        return found[1] if found else None

    def stat(self, object_name: str, *, channel: str | None = None) -> Stored | None:
        """The object's metadata without its bytes, or None when there is no such object."""
        channel = channel or self.channel
        with self._errors(channel, object_name):
            return self._stat(object_name, channel)[0]

    def _stat(self, object_name: str, channel: str) -> tuple[Stored, Blob] | tuple[None, None]:
        bucket = self._bucket()
        blob = bucket.get_blob(object_name, timeout=REQUEST_TIMEOUT, retry=self._retry())
        if blob is None:
            self._require_bucket(bucket, channel)
            return None, None
        return Stored(blob.content_type, blob.cache_control, blob.generation, dict(blob.metadata or {})), blob

    def _fetch(self, object_name: str, channel: str) -> tuple[Stored, bytes] | None:
        from google.api_core.exceptions import NotFound

        with self._errors(channel, object_name):
            # Metadata first: the download rewrites the blob's properties from the response headers
            # (which, from the emulator, lack Cache-Control and the generation).
            stored, blob = self._stat(object_name, channel)
            if blob is None:
                return None
            try:
                data = blob.download_as_bytes(timeout=REQUEST_TIMEOUT, retry=self._retry())
            except NotFound:  # deleted between the two calls
                return None
            return stored, data

    # -- writing ------------------------------------------------------------------------------
    def put_immutable(
        self, object_name: str, data: bytes, *, content_type: str, cache_control: str, channel: str
    ) -> Written:
        """Upload a versioned object once; the same bytes again are ``unchanged``, other bytes are refused.

        The upload carries ``ifGenerationMatch=0`` (create only), which real GCS enforces. The storage
        emulator ignores preconditions, so in the sandbox the read-compare-upload is the only guard: two
        releases of one environment racing could both see "absent". One release per environment runs at
        a time (DESIGN.md), which closes that window.
        """
        from google.api_core.exceptions import PreconditionFailed

        found = self._fetch(object_name, channel)
        if found is not None:
            return self._same_or_conflict(found, object_name, data, content_type, cache_control, channel)
        try:
            self._upload(object_name, data, content_type, cache_control, channel, generation=0)
        except PreconditionFailed:  # created meanwhile (real GCS only): judge what is there now
            found = self._fetch(object_name, channel)
            if found is None:
                raise
            return self._same_or_conflict(found, object_name, data, content_type, cache_control, channel)
        return "published"

    def put_alias(
        self,
        object_name: str,
        data: bytes,
        *,
        content_type: str,
        cache_control: str,
        channel: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Written:
        """Point an alias (``latest``) at ``data``: overwritten when the bytes, headers or ``metadata`` differ.

        The overwrite is conditional on the generation just read, so on real GCS a concurrent move
        fails (PublishError) instead of being lost silently.
        """
        from google.api_core.exceptions import PreconditionFailed

        channel = channel or self.channel
        found = self._fetch(object_name, channel)
        if found is not None:
            stored, current = found
            wanted = (data, content_type, cache_control, dict(metadata or {}))
            if (current, stored.content_type, stored.cache_control, stored.metadata) == wanted:
                return "unchanged"
        try:
            self._upload(
                object_name,
                data,
                content_type,
                cache_control,
                channel,
                generation=found[0].generation if found else 0,
                metadata=metadata,
            )
        except PreconditionFailed:
            raise PublishError(
                f"{channel} -> cdn: gs://{self.bucket}/{object_name} changed while it was being updated; "
                "another release is moving it - let that one finish, then retry this task",
                channel=channel,
                destination=DESTINATION,
            ) from None
        return "published"

    def _same_or_conflict(
        self,
        found: tuple[Stored, bytes],
        object_name: str,
        data: bytes,
        content_type: str,
        cache_control: str,
        channel: str,
    ) -> Written:
        stored, current = found
        if current != data:
            raise PublishConflictError(
                f"{channel} -> cdn: gs://{self.bucket}/{object_name} is already published with different bytes "
                f"(sha256 {_sha256(current)} there, {_sha256(data)} now); nothing was overwritten. "
                "A published version is immutable: release a new version",
                channel=channel,
                destination=DESTINATION,
            )
        if (stored.content_type, stored.cache_control) == (content_type, cache_control):
            return "unchanged"
        # Same bytes, other headers (a crashed earlier attempt, a hand upload): converge the metadata.
        with self._errors(channel, object_name):
            target = self._bucket().blob(object_name)
            target.content_type, target.cache_control = content_type, cache_control
            target.patch(if_generation_match=stored.generation, timeout=REQUEST_TIMEOUT, retry=self._retry())
        return "published"

    def _upload(
        self,
        object_name: str,
        data: bytes,
        content_type: str,
        cache_control: str,
        channel: str,
        *,
        generation: int | None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        from google.api_core.exceptions import NotFound

        with self._errors(channel, object_name):
            bucket = self._bucket()
            blob = bucket.blob(object_name)
            # Set as metadata (not only the media part's header) so the full type, charset included, is stored.
            blob.content_type, blob.cache_control = content_type, cache_control
            if metadata:
                blob.metadata = dict(metadata)
            try:
                blob.upload_from_string(
                    data,
                    content_type=content_type,
                    if_generation_match=generation,
                    timeout=REQUEST_TIMEOUT,
                    retry=self._retry(),
                )
            except NotFound:
                self._require_bucket(bucket, channel)
                raise
        self.log.info("Uploaded gs://%s/%s (%d bytes, sha256 %s)", self.bucket, object_name, len(data), _sha256(data))

    # -- plumbing -----------------------------------------------------------------------------
    def _bucket(self) -> Bucket:
        return self.get_conn().bucket(self.bucket)

    def _require_bucket(self, bucket: Bucket, channel: str) -> None:
        if not bucket.exists(timeout=REQUEST_TIMEOUT, retry=self._retry()):
            raise PublishError(
                f"{channel} -> cdn: the bucket {bucket.name!r} (extra 'bucket' of the Airflow connection "
                f"{self.gcp_conn_id!r}) does not exist at {self._endpoint()}; create it or fix the connection",
                channel=channel,
                destination=DESTINATION,
            )

    def _endpoint(self) -> str:
        return self._get_field("api_endpoint") or "the Google Cloud Storage API"

    @staticmethod
    def _retry():
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(RETRY_TIMEOUT)

    @contextlib.contextmanager
    def _errors(self, channel: str, object_name: str) -> Iterator[None]:
        """Storage and credential failures become PublishErrors naming the connection and what to fix."""
        from google.api_core.exceptions import Forbidden, GoogleAPIError, PreconditionFailed, Unauthorized
        from google.auth.exceptions import GoogleAuthError
        from requests import RequestException

        where = f"gs://{self._get_field('bucket')}/{object_name}"
        conn = f"the Airflow connection {self.gcp_conn_id!r}"
        try:
            yield
        except PublishError:
            raise
        except (Unauthorized, Forbidden, GoogleAuthError) as exc:
            raise PublishAuthError(
                f"{channel} -> cdn: {self._endpoint()} refused the credentials of {conn} for {where}: "
                f"{_short(exc)}; give its service account write access to the bucket (roles/storage.objectAdmin)",
                channel=channel,
                destination=DESTINATION,
            ) from exc
        except PreconditionFailed:
            raise  # the caller decides what a lost race means
        except (GoogleAPIError, RequestException) as exc:
            raise PublishError(
                f"{channel} -> cdn: {where} via {self._endpoint()} (from {conn}) failed: {_short(exc)}",
                channel=channel,
                destination=DESTINATION,
            ) from exc


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
