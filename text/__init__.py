"""Text analysis every layer shares: scripts, language, sentences, stopwords, citation markers.

The bottom floor beside `config`: it imports nothing from the project, so the indexer, the
ingest pipeline, the answer service and the evaluation all agree on what a Han character, a
Chinese question, a sentence end, a stopword and a ``[n]`` marker are, because there is only
one definition of each. Modules are small and of one job each: `text.script`,
`text.chinese_script` (traditional or simplified, and conversion), `text.language`,
`text.sentences`, `text.stopwords`, `text.citation_markers`.

`ui` does not use this package: it reaches the service over HTTP only and keeps its own copy.
"""
