"""Uploaded documents in S3-compatible object storage: an upload through the page lands in the
bucket, the real worker (another process) reads it from there and makes it searchable, nothing is
written to the local media folder, and deleting the document deletes its object.

The bucket is moto's S3 server on loopback (the network boundary); everything else is the
studio's own code, configured by the environment variables an operator would set.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse
from pytest_django.asserts import assertRedirects

from knowledge.models import Chunk, Document, DocumentStatus, KnowledgeBase
from knowledge.services.bases import BaseSettings, kb_create
from studio import launch
from studio import settings as studio_settings
from tests.knowledge.helpers import PARAGRAPHS, wait_for
from tests.s3 import s3_client

BUCKET = "studio-documents"
FACT = "The lighthouse keeper on Skerryvore logs the fog signal every seventeen minutes."


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    """A bucket on moto's S3 server on loopback, and the environment that points the studio at
    it (with a media folder of its own, which must stay empty)."""
    from moto.server import ThreadedMotoServer

    port = launch.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "STUDIO_S3_BUCKET": BUCKET,
        "STUDIO_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "STUDIO_S3_REGION": "us-east-1",
        "STUDIO_S3_ADDRESSING_STYLE": "path",
        "STUDIO_S3_ACCESS_KEY_ID": "studio-test",
        "STUDIO_S3_SECRET_ACCESS_KEY": "studio-test-secret",
        "STUDIO_S3_PREFIX": "uploads",
        "STUDIO_MEDIA_ROOT": str(tmp_path_factory.mktemp("s3") / "media"),
    }
    s3_client(env).create_bucket(Bucket=BUCKET)
    yield env
    server.stop()


def _objects(env: dict[str, str]) -> dict[str, bytes]:
    client = s3_client(env)
    listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {
        item["Key"]: client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        for item in listed
    }


@pytest.fixture(scope="module")
def s3_worker(worker_process, s3_env):
    """The session's worker, restarted with the bucket's environment; stopped after, so that
    later tests get one that keeps files in its media folder."""
    worker_process.stop()
    worker_process.env.update(s3_env)
    try:
        worker_process.start()
        yield worker_process
    finally:
        for name in s3_env:
            worker_process.env.pop(name, None)
        worker_process.stop()


@pytest.fixture
def s3_storage(s3_env, s3_worker, transactional_db):
    """This process's storage, from the same environment as the worker's."""
    with override_settings(
        STORAGES=studio_settings.storages_for(s3_env), MEDIA_ROOT=s3_env["STUDIO_MEDIA_ROOT"]
    ):
        yield s3_env


@pytest.fixture
def base(workspace, owner, embedding_model) -> KnowledgeBase:
    return kb_create(
        workspace=workspace,
        slug="logbook",
        values=BaseSettings(name="Logbook", chunk_size=64, chunk_overlap=0),
        actor=owner,
    )


def test_an_uploaded_document_lives_in_the_bucket_and_is_searchable(
    client, owner, base, s3_storage
):
    started = time.monotonic()
    text = "\n\n".join([PARAGRAPHS[2], FACT, PARAGRAPHS[5]])
    client.force_login(owner)
    response = client.post(
        reverse("knowledge:kb-upload", args=[base.id]),
        {"files": [SimpleUploadedFile("logbook.txt", text.encode(), "text/plain")]},
    )
    assertRedirects(response, reverse("knowledge:kb-detail", args=[base.id]))
    document = Document.objects.get(knowledge_base=base, name="logbook.txt")

    # The original bytes are an object under the prefix.
    key = f"uploads/{document.file.name}"
    assert _objects(s3_storage) == {key: text.encode()}

    # The worker, another process, read it from the bucket.
    wait_for(document, timeout=45)
    assert document.status == DocumentStatus.READY, document.error
    assert Chunk.objects.filter(document=document, text__contains="Skerryvore").exists()

    found = client.post(
        reverse("knowledge:kb-test", args=[base.id]),
        {"query": "Skerryvore fog signal", "mode": "keyword", "rerank": ""},
    )
    assert found.status_code == 200
    first = re.search(
        r'<article class="card result" id="result-1".*?</article>', found.content.decode(), re.S
    )
    assert first and "Skerryvore" in first.group(0) and "logbook.txt" in first.group(0)

    # Deleting the document deletes its object.
    gone = client.post(reverse("knowledge:document-delete", args=[document.id]))
    assertRedirects(gone, reverse("knowledge:kb-detail", args=[base.id]))
    assert not Document.objects.filter(id=document.id).exists()
    assert _objects(s3_storage) == {}
    # Neither this process nor the worker wrote a file to the local media folder.
    media = Path(s3_storage["STUDIO_MEDIA_ROOT"])
    assert not any(path.is_file() for path in media.rglob("*"))
    assert time.monotonic() - started < 60


def test_a_lost_object_fails_the_document_with_what_to_do(client, owner, base, s3_storage):
    """What the storage says (its endpoint, the object's key) stays in the worker's log."""
    client.force_login(owner)
    client.post(
        reverse("knowledge:kb-upload", args=[base.id]),
        {"files": [SimpleUploadedFile("lost.txt", FACT.encode(), "text/plain")]},
    )
    document = wait_for(Document.objects.get(knowledge_base=base, name="lost.txt"), timeout=45)
    assert document.status == DocumentStatus.READY, document.error
    s3_client(s3_storage).delete_object(Bucket=BUCKET, Key=f"uploads/{document.file.name}")

    response = client.post(reverse("knowledge:document-reingest", args=[document.id]))
    assertRedirects(response, reverse("knowledge:kb-detail", args=[base.id]))
    wait_for(document, statuses=(DocumentStatus.FAILED,), timeout=45)
    assert document.error == "the stored file of lost.txt is missing; upload it again"
    # The previous generation's chunks stay searchable.
    assert Chunk.objects.filter(document=document, searchable=True, text__contains="fog").exists()
