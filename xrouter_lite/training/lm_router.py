"""The LM router: a causal LM behind the episode runner's `router(messages, tools) -> text` interface.

Concurrent callers (episodes run in threads, or server requests) are micro-batched into one left-padded
`generate` call, which is what makes evaluating hundreds of episodes on a CPU affordable.

    router = LMRouter(model, tokenizer)                  # greedy by default
    text = router(messages, tools)                       # one router turn
    episodes = run_episodes(router, queries, pool, workers=16)
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import torch
from transformers import LogitsProcessorList

from xrouter_lite.training.guided import name_constraint


class LMRouter:
    """Wraps a causal LM + tokenizer (with a tools-aware chat template) as an episode router."""

    def __init__(self, model, tokenizer, temperature: float = 0.0, max_new_tokens: int = 160,
                 max_batch: int = 16, batch_wait_s: float = 0.01, seed: int = 0, guided: bool = True):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.temperature = temperature  # 0 = greedy: evaluation reports the router's most likely choice
        self.max_new_tokens = max_new_tokens  # a tool call is ~40 tokens; longer turns are cut (then invalid)
        self.max_batch = max_batch  # generations per forward pass; lower it if memory is short
        self.batch_wait_s = batch_wait_s  # how long the first request waits for company
        self.seed = seed
        self.guided = guided  # tool names limited to the prompt's tools where names are single tokens (guided.py)
        self.generated_tokens = 0  # router output tokens so far (the serving cost the reward leaves out)
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stop_ids = [i for i in (tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id)
                          if isinstance(i, int) and i >= 0]

    def prompt(self, messages: list[dict], tools: list[dict] | None) -> str:
        """The chat-template rendering the model sees, ending with the assistant header."""
        return self.tokenizer.apply_chat_template(messages, tools=tools or None, add_generation_prompt=True,
                                                  tokenize=False)

    @torch.no_grad()
    def generate(self, requests: list[tuple[list[dict], list[dict] | None]]) -> list[str]:
        """One router turn for each (messages, tools) request, in a single batched generate."""
        tok = self.tokenizer
        tok.padding_side = "left"  # decoder-only generation continues from the right edge
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        enc = tok([self.prompt(m, t) for m, t in requests], return_tensors="pt", padding=True,
                  add_special_tokens=False).to(self.model.device)
        sample = self.temperature > 0
        if sample:
            torch.manual_seed(self.seed)
            self.seed += 1  # a fresh but reproducible stream per batch
        constraint = name_constraint(tok, [t for _, t in requests]) if self.guided else None
        out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=sample,
                                  logits_processor=LogitsProcessorList([constraint] if constraint else []),
                                  temperature=self.temperature if sample else None, top_p=None, top_k=None,
                                  eos_token_id=self._stop_ids, pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        self.generated_tokens += int((new != tok.pad_token_id).sum())
        # skip_special_tokens drops <|im_end|> and padding but keeps <tool_call> (an added, non-special token)
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]

    def __call__(self, messages: list[dict], tools: list[dict] | None = None) -> str:
        """One router turn; safe to call from many threads at once (calls are batched together)."""
        fut: Future = Future()
        self._queue.put((messages, tools, fut))
        self._ensure_worker()
        return fut.result()

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, daemon=True)
                self._worker.start()

    def _serve(self) -> None:
        """Collect up to max_batch waiting requests, run them together, hand back each result."""
        while True:
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                return  # idle: the thread ends; the next call starts a new one
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get(timeout=self.batch_wait_s))
                except queue.Empty:
                    break
            try:
                texts = self.generate([(m, t) for m, t, _ in batch])
                for (_, _, fut), text in zip(batch, texts):
                    fut.set_result(text)
            except Exception as exc:  # a failed batch fails its callers, never the worker silently
                for _, _, fut in batch:
                    fut.set_exception(exc)
