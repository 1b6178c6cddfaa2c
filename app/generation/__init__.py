"""Generation behind the `Generator` protocol: transformers (real), a fake, an extractive fallback.

Import the real implementation from `app.generation.transformers_generator`; this package's
import stays light (no torch) so that fakes and tests load fast.
"""
