"""What every notebook's setup cell calls once: quiet library chatter, and plotly figures that also carry a PNG.

    >>> from xrouter_lite.notebook import setup_notebook
    >>> setup_notebook()                         # doctest: +SKIP
    figures: interactive + a static PNG copy (kaleido, /usr/bin/chromium); library progress bars and warnings off

Why a PNG copy: JupyterLab draws plotly's own output (`application/vnd.plotly.v1+json`), but GitHub, nbviewer and
nbconvert's HTML draw none of it, so an executed notebook showed no figure there. With `static_figures()` every
`fig.show()` (and a figure left as a cell's value) writes ONE output holding both: JupyterLab keeps drawing the
interactive figure, every other viewer falls back to the `image/png`. The PNG comes from plotly's own export
(kaleido driving a headless Chrome/Chromium, the same code that writes the README's figure); one browser is started
once per kernel (~4 s) and each figure then takes ~0.3 s. Without kaleido or a browser the figures stay interactive
only and one line says why.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import warnings

PNG_RENDERER = "xrouter_png"  # registered with plotly.io.renderers by `static_figures`
PNG_WIDTH = 960  # layout pixels of the static copy (about JupyterLab's output width); its layout height is kept
_png_off: str | None = None  # why the PNG copies are off, once they failed ("" = working)
_kaleido_started = False


def browser_path() -> str | None:
    """The Chrome/Chromium kaleido will drive: $BROWSER_PATH, else the first on PATH (Debian's is `chromium`)."""
    if os.environ.get("BROWSER_PATH"):
        return os.environ["BROWSER_PATH"]
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
    return next((p for p in map(shutil.which, names) if p), None)


def _start_kaleido() -> None:
    """One headless browser for the whole kernel (a one-shot export starts one per figure: ~5 s each)."""
    global _kaleido_started
    if _kaleido_started:
        return
    import kaleido

    path = browser_path()
    if path:
        os.environ.setdefault("BROWSER_PATH", path)  # choreographer (kaleido's browser driver) reads it
    warnings.filterwarnings("ignore", message="The kopts argument is ignored if using a server")
    kaleido.start_sync_server(silence_warnings=True)
    atexit.register(kaleido.stop_sync_server, silence_warnings=True)
    _kaleido_started = True


def png_bytes(fig, width: int = PNG_WIDTH, height: int | None = None, scale: float = 1.0) -> bytes:
    """The figure as PNG bytes through plotly's export (kaleido + Chrome/Chromium); raises if that cannot run."""
    import plotly.io as pio

    _start_kaleido()
    return pio.to_image(fig, format="png", width=width, height=height, scale=scale)


def _safe_png_renderer():
    """A plotly PNG renderer that never breaks a cell: on the first failure it says why once, then stays off."""
    from plotly.io._base_renderers import PngRenderer

    class SafePngRenderer(PngRenderer):
        def to_mimebundle(self, fig_dict):
            global _png_off
            if _png_off:
                return {}
            try:
                _start_kaleido()
                bundle = super().to_mimebundle(fig_dict)
                _png_off = ""
                return bundle
            except Exception as exc:  # no kaleido, no browser, a browser that fails to start
                _png_off = f"{type(exc).__name__}: {' '.join(str(exc).split())[:140]}"
                print(f"figures are interactive only (no static PNG copy: {_png_off}; it needs kaleido and "
                      "Chrome or Chromium, e.g. apt-get install chromium)")
                return {}

    return SafePngRenderer(width=PNG_WIDTH)


def static_figures(enable: bool = True) -> str:
    """Make every plotly figure shown from now on carry a static PNG beside its interactive output."""
    import sys

    import plotly.io as pio

    current = [r for r in (pio.renderers.default or "plotly_mimetype").split("+") if r != PNG_RENDERER]
    if not enable or "google.colab" in sys.modules:  # Colab draws its own renderer ("colab") and has no kaleido
        pio.renderers.default = "+".join(current)
        return "figures: interactive only" + (" (Colab)" if enable else " (static PNG copies switched off)")
    pio.renderers[PNG_RENDERER] = _safe_png_renderer()
    pio.renderers.default = "+".join(current + [PNG_RENDERER])  # plotly's own choice for this frontend, plus PNG
    where = browser_path()
    return f"figures: interactive + a static PNG copy (kaleido, {where or 'a browser kaleido finds itself'})"


def interactive_renderer() -> str:
    """The current plotly renderer without the PNG copy: for live redraws (ipywidgets Output areas), where a PNG
    costs an export per redraw and a widget's output area may prefer it over the interactive figure."""
    import plotly.io as pio

    return "+".join(r for r in (pio.renderers.default or "plotly_mimetype").split("+") if r != PNG_RENDERER)


def quiet_libraries() -> None:
    """Silence what buries a learner's output: transformers' weight-loading bars and info logs, datasets' map
    bars, and known deprecation/experimental warnings. Training progress (the trainer's own bar, or
    `xrouter_lite.training.progress.ProgressPrinter`) and errors still show."""
    import transformers
    from transformers.utils import logging as hf_logging

    transformers.logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # "Loading weights: 100%|..." on every from_pretrained
    try:
        import datasets

        datasets.disable_progress_bars()  # "Map: 100%|..." while TRL tokenizes
        datasets.logging.set_verbosity_error()
    except ImportError:  # datasets is pinned, but the helper should not need it
        pass
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is marked experimental in TRL 1.16
    for module in ("transformers", "trl", "peft", "accelerate", "torch", "datasets"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
    warnings.filterwarnings("ignore", message=".*TRL_EXPERIMENTAL_SILENCE.*")
    for name in ("httpx", "accelerate", "trl"):
        logging.getLogger(name).setLevel(logging.ERROR)


def setup_notebook(png: bool = True, quiet: bool = True) -> str:
    """Both of the above, once per notebook (its setup cell); the line says what is on."""
    if quiet:
        quiet_libraries()
    said = static_figures(png)
    return said + ("; library progress bars and warnings off" if quiet else "")
