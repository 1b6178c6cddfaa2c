"""What the chat UI does when a person acts: ask, pick a source, upload, refresh collections.

Each callback takes component values and returns new ones; ``ui.blocks`` wires them to the
layout. Every call to the service goes through ``DocqaClient``; a ``UiError`` becomes a readable
message where the person is looking (the chat, the upload report, the collection notice). Any
other exception is logged with its trace for the operator and shown as one plain sentence.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gradio as gr

from ui import render
from ui.client import DocqaClient
from ui.conversation import Exchange, chat_messages, exchange_at, history
from ui.errors import UiError
from ui.types import Answer, Job

log = logging.getLogger(__name__)

JOB_POLL_S = 0.5  # how often an upload's ingest job is asked for its progress
UNEXPECTED = "Something went wrong in the chat UI ({kind}); the server log has the details."


def _unexpected(exc: Exception) -> str:
    log.exception("chat UI callback failed")
    return UNEXPECTED.format(kind=type(exc).__name__)


def _sources(answer: Answer | None) -> Any:
    choices = render.source_choices(answer)
    return gr.Radio(choices=choices, value=None, visible=bool(choices))


class Callbacks:
    """The UI's event handlers, bound to one API client and the default collection."""

    def __init__(
        self,
        client: DocqaClient,
        default_collection: str,
        *,
        poll_s: float = JOB_POLL_S,
        job_limit_s: float | None = None,
    ) -> None:
        self.client = client
        self.default_collection = default_collection
        self.poll_s = poll_s
        self.job_limit_s = client.timeout_s if job_limit_s is None else job_limit_s

    # ---------------------------------------------------------------- chat
    async def ask(
        self, question: str, exchanges: list[Exchange], collection: str, top_k: float
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Stream an answer into the chat. Outputs: chat, exchanges, question box, source
        picker, source panel, index of the exchange whose sources are listed."""
        question = (question or "").strip()
        if not question:
            yield (gr.skip(),) * 6
            return
        exchanges = list(exchanges or [])
        previous = history(exchanges)
        current = Exchange(question)
        exchanges.append(current)
        yield (
            chat_messages(exchanges),
            exchanges,
            "",
            _sources(None),
            render.empty_source_panel(),
            None,
        )
        keep = (gr.skip(),) * 4
        try:
            stream = self.client.ask_stream(
                question,
                collection=(collection or "").strip() or self.default_collection,
                top_k=int(top_k),
                history=previous,
            )
            async for item in stream:
                if isinstance(item, Answer):
                    current.answer = item
                else:
                    current.partial += item
                    yield (chat_messages(exchanges), exchanges, *keep)
        except UiError as exc:
            current.error = str(exc)
        except Exception as exc:  # never a stack trace in the chat
            current.error = _unexpected(exc)
        if current.answer is None and current.error is None:
            current.error = "The server sent no answer. Ask again."
        yield (
            chat_messages(exchanges),
            exchanges,
            gr.skip(),
            _sources(current.answer),
            gr.skip(),
            len(exchanges) - 1 if current.answer is not None else None,
        )

    def clear(self) -> tuple[Any, ...]:
        """A new conversation: no messages, no history, no sources."""
        return [], [], _sources(None), render.empty_source_panel(), None

    # ---------------------------------------------------------------- sources
    def show_source(self, choice: str | None, exchanges: list[Exchange], shown: int | None) -> str:
        """The source panel for citation ``choice`` of the exchange whose sources are listed."""
        if not choice or shown is None or not 0 <= shown < len(exchanges or []):
            return render.empty_source_panel()
        answer = exchanges[shown].answer
        citation = answer.citation(int(choice)) if answer is not None else None
        if answer is None or citation is None:
            return render.empty_source_panel()
        return render.source_panel(citation, answer.answer)

    def pick_exchange(
        self, exchanges: list[Exchange], event: gr.SelectData
    ) -> tuple[Any, str, int | None]:
        """Clicking a chat message lists the sources of that exchange's answer."""
        index = exchange_at(event.index)
        if index is None or not 0 <= index < len(exchanges or []):
            return gr.skip(), gr.skip(), gr.skip()
        answer = exchanges[index].answer
        return _sources(answer), render.empty_source_panel(), index if answer else None

    # ---------------------------------------------------------------- collections
    async def collections(self, current: str | None, select: bool = False) -> tuple[Any, str]:
        """Fill the collection picker from the server. Outputs: picker, notice.

        The picked value is left alone (a name typed meanwhile survives) unless ``select``.
        """
        chosen = (current or "").strip() or self.default_collection
        try:
            found = await self.client.collections()
        except UiError as exc:
            return gr.skip(), render.error_message(str(exc))
        except Exception as exc:
            return gr.skip(), render.error_message(_unexpected(exc))
        choices = render.collection_choices(found)
        if chosen not in {c.name for c in found}:
            choices.append((f"{chosen} (new)", chosen))
        note = "" if found else render.hint("No collections yet: upload a document to start one.")
        picker = (
            gr.Dropdown(choices=choices, value=chosen) if select else gr.Dropdown(choices=choices)
        )
        return picker, note

    # ---------------------------------------------------------------- uploads
    async def upload(
        self, path: str | None, collection: str | None
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Upload a file through the API, then follow its ingest job: its stage and progress
        while it runs, its report when it has run. Outputs: report, picker, notice, file box.

        The job is watched for ``job_limit_s``; past that the report says it is still running
        (with its id) and the callback ends, so the UI never waits on a stuck job.
        """
        target = (collection or "").strip() or self.default_collection
        if not path:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        name = Path(path).name
        keep = gr.skip(), gr.skip()
        job: Job | None = None
        try:
            job = await self.client.upload(target, Path(path), filename=name)
            log.info("uploaded %s into %s: job %s", name, target, job.id)
            yield render.job_progress(name, job), *keep, gr.skip()
            updates = self.client.follow(job, poll_s=self.poll_s, limit_s=self.job_limit_s)
            async for update in updates:
                job = update
                if not job.finished:
                    yield render.job_progress(name, job), *keep, gr.skip()
        except Exception as exc:
            message = str(exc) if isinstance(exc, UiError) else _unexpected(exc)
            if job is not None:  # the upload went in; only watching it failed
                message += f" (The upload is job {job.id}; it may still run on the server.)"
            yield render.error_message(message), *keep, None
            return
        if not job.finished:
            log.info("job %s of %s still %s; the UI stops watching", job.id, name, job.state)
            yield render.job_pending(name, job, self.job_limit_s), *keep, None
            return
        log.info("job %s of %s %s", job.id, name, job.state)
        picker, note = await self.collections(target, select=True)
        yield render.job_report(name, job), picker, note, None
