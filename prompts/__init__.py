"""Every prompt docqa sends a model, as a versioned file, and the one loader that reads them.

A bottom-floor package: ``index`` (the reranker) and ``app`` (answers, follow-up rewrites,
answerability) both render prompts, and neither may import the other's home for them.
"""
