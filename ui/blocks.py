"""The chat UI's layout (Gradio Blocks) and the wiring of its events to ``ui.callbacks``.

Left: the chat, the question box, and the numbered sources of the answer shown. Right: the source
panel (the cited passage, highlighted), the collection picker, the settings (top-k) and the file
upload, whose ingest job's progress shows in the report until it is done. Components the browser
test locates carry an ``elem_id``.
"""

from __future__ import annotations

import gradio as gr

from ui.callbacks import Callbacks
from ui.client import DocqaClient
from ui.config import UiConfig
from ui.render import empty_source_panel

TITLE = "docqa"
INTRO = (
    "Ask a question about your documents. Answers cite their sources as [n]: pick a number to "
    "see the passage. Follow-up questions use the conversation. 中文问题也可以。"
)
ASK_CONCURRENCY = 4  # answers generated at once for all browsers; the API queues the rest
UPLOAD_CONCURRENCY = 8  # uploads sent or watched at once: a watched job mostly waits on the API


def build_blocks(config: UiConfig) -> gr.Blocks:
    """The whole UI, talking to ``config.api_url`` over HTTP only."""
    client = DocqaClient(config.api_url, config.api_key, timeout_s=config.timeout_s)
    cb = Callbacks(client, config.collection)
    blocks = gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600))
    with blocks:
        exchanges = gr.State([])
        shown = gr.State(None)  # which exchange's sources the picker lists
        gr.Markdown(f"## {TITLE}\n{INTRO}", elem_id="intro")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chat = gr.Chatbot(
                    elem_id="chat",
                    label="Conversation",
                    height=520,
                    feedback_options=None,
                    buttons=["copy"],
                    placeholder="Answers appear here, with their sources.",
                )
                with gr.Row():
                    question = gr.Textbox(
                        elem_id="question",
                        show_label=False,
                        placeholder="Ask a question… / 请输入问题…",
                        lines=1,
                        max_lines=6,
                        scale=5,
                        autofocus=True,
                    )
                    ask = gr.Button("Ask", elem_id="ask", variant="primary", scale=1)
                sources = gr.Radio(
                    elem_id="sources",
                    label="Sources of this answer",
                    choices=[],
                    visible=False,
                )
                new_chat = gr.Button("New conversation", elem_id="new-chat", size="sm")
            with gr.Column(scale=2):
                panel = gr.HTML(empty_source_panel(), elem_id="source-panel")
                with gr.Accordion("Collection and settings", open=True):
                    collection = gr.Dropdown(
                        elem_id="collection",
                        label="Collection",
                        choices=[(config.collection, config.collection)],
                        value=config.collection,
                        allow_custom_value=True,
                        info="Type a new name to create a collection with an upload.",
                    )
                    collection_note = gr.HTML("", elem_id="collection-note")
                    refresh = gr.Button("Refresh collections", elem_id="refresh", size="sm")
                    top_k = gr.Slider(
                        1, 20, value=config.top_k, step=1, label="Passages (top-k)", elem_id="top-k"
                    )
                with gr.Accordion("Add a document", open=True):
                    upload = gr.File(
                        elem_id="upload",
                        label="PDF, Word, HTML, Markdown or text",
                        file_count="single",
                        type="filepath",
                    )
                    report = gr.HTML("", elem_id="upload-report")

        ask_inputs = [question, exchanges, collection, top_k]
        ask_outputs = [chat, exchanges, question, sources, panel, shown]
        for trigger in (question.submit, ask.click):
            trigger(
                cb.ask,
                ask_inputs,
                ask_outputs,
                concurrency_limit=ASK_CONCURRENCY,
                concurrency_id="ask",
                show_progress="minimal",
            )
        reset = [chat, exchanges, sources, panel, shown]
        new_chat.click(cb.clear, None, reset, queue=False)
        chat.clear(cb.clear, None, reset, queue=False)
        sources.change(cb.show_source, [sources, exchanges, shown], panel, queue=False)
        chat.select(cb.pick_exchange, [exchanges], [sources, panel, shown], queue=False)
        refresh.click(cb.collections, [collection], [collection, collection_note])
        blocks.load(cb.collections, [collection], [collection, collection_note])
        upload.upload(  # a generator: the job's progress, then its report
            cb.upload,
            [upload, collection],
            [report, collection, collection_note, upload],
            concurrency_limit=UPLOAD_CONCURRENCY,
            concurrency_id="upload",
            show_progress="full",
        )
    return blocks
