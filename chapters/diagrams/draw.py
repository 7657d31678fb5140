"""The book's diagrams, drawn as SVG by code so that they can be changed: python3 chapters/diagrams/draw.py

Writes one ``.svg`` per diagram beside this file, and puts the same SVG into the chapters that show it,
inline as ``<img src="data:image/svg+xml;base64,..." title="NAME">``: GitHub's notebook view does not
show an SVG from a relative path, while JupyterLab, GitHub and the website all show an inline one.
Plain SVG 1.1 with no external font or script. ``tests/test_site.py`` checks that the committed files
and the chapters hold what this script draws.
"""
from __future__ import annotations

import base64
import json
import re
from html import escape
from pathlib import Path

HERE = Path(__file__).resolve().parent
FONT = "DejaVu Sans, Arial, Helvetica, sans-serif"
BLUE, ORANGE, GREY, GREEN, RED, INK = "#4c72b0", "#dd8452", "#8c8c8c", "#55a868", "#c44e52", "#222222"


SUBSCRIPTS = (("_{t-1}", "ₜ₋₁"), ("_{t+1}", "ₜ₊₁"), ("_{max}", "ₘₐₓ"), ("_t", "ₜ"))


def subscripts(text: str) -> str:
    """``c_{t-1}`` -> ``cₜ₋₁``: Unicode subscripts, which every viewer draws the same."""
    for tex, uni in SUBSCRIPTS:
        text = text.replace(tex, uni)
    return text


class Svg:
    def __init__(self, width: int, height: int, title: str):
        self.w, self.h, self.parts = width, height, []
        self.title = title

    def box(self, x, y, w, h, label="", fill="#ffffff", stroke=INK, size=14, rx=6, dash=None, bold=False, color=INK):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="{rx}" fill="{fill}" stroke="{stroke}" '
                          f'stroke-width="1.5"{d}/>')
        if label:
            self.text(x + w / 2, y + h / 2, label, size=size, bold=bold, color=color)

    def circle(self, x, y, r, label="", fill="#ffffff", size=16):
        self.parts.append(f'<circle cx="{x}" cy="{y}" r="{r}" fill="{fill}" stroke="{INK}" stroke-width="1.5"/>')
        if label:
            self.text(x, y, label, size=size)

    def text(self, x, y, s, size=14, anchor="middle", bold=False, color=INK, italic=False):
        lines = subscripts(str(s)).split("\n")
        y0 = y - (len(lines) - 1) * size * 0.6
        style = (' font-weight="bold"' if bold else "") + (' font-style="italic"' if italic else "")
        for k, line in enumerate(lines):
            self.parts.append(f'<text x="{x}" y="{y0 + k * size * 1.2:.1f}" font-family="{FONT}" font-size="{size}" '
                              f'text-anchor="{anchor}" dominant-baseline="central" fill="{color}"{style}>'
                              f'{escape(line)}</text>')

    def line(self, points, color=INK, width=1.5, arrow=True, dash=None):
        pts = " ".join(f"{x},{y}" for x, y in points)
        d = f' stroke-dasharray="{dash}"' if dash else ""
        m = f' marker-end="url(#head-{color[1:]})"' if arrow else ""
        self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{width}"{d}{m}/>')
        self._colors.add(color)

    _colors: set = set()

    def render(self) -> str:
        markers = "".join(f'<marker id="head-{c[1:]}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
                          f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>'
                          for c in sorted(self._colors))
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                f'viewBox="0 0 {self.w} {self.h}" role="img" aria-label="{escape(self.title)}">\n'
                f'<title>{escape(self.title)}</title>\n<defs>{markers}</defs>\n'
                f'<rect width="100%" height="100%" fill="#ffffff"/>\n' + "\n".join(self.parts) + "\n</svg>\n")


def new(width, height, title) -> Svg:
    svg = Svg(width, height, title)
    svg._colors = set()
    return svg


def lstm_cell() -> str:
    """Chapter 1: one LSTM step, and the path the gradient takes back along the cell state."""
    s = new(760, 400, "An LSTM cell: four gates from [x_t, h_t-1], the cell state c, and the gradient path along c")
    # the cell state highway
    s.text(40, 70, "c_{t-1}", size=16, italic=True)
    s.line([(70, 70), (318, 70)], color=RED, width=3)
    s.circle(340, 70, 20, "×")
    s.line([(360, 70), (478, 70)], color=RED, width=3)
    s.circle(500, 70, 20, "+")
    s.line([(520, 70), (700, 70)], color=RED, width=3)
    s.text(725, 70, "c_t", size=16, italic=True)
    s.text(420, 40, "gradient path: ∂c_t/∂c_{t-1} = f_t (no squashing, no weight matrix)", size=13, color=RED)
    # gates
    gates = [("f_t", "σ", 300), ("i_t", "σ", 392), ("g_t", "tanh", 478), ("o_t", "σ", 580)]
    for name, act, x in gates:
        s.box(x - 38, 220, 76, 44, f"{name} = {act}", fill="#eef3fb", size=13)
    s.text(150, 330, "[x_t, h_{t-1}]", size=15, italic=True)
    s.line([(150, 310), (150, 290), (580, 290)], arrow=False)
    for _, _, x in gates:
        s.line([(x, 290), (x, 266)])
    s.text(380, 375, "each gate: act(W x_t + U h_{t-1} + b), one row block of W, U, b", size=12, color=GREY)
    # wiring gates into the state
    s.line([(300, 220), (300, 110), (335, 90)])                     # f into ×
    s.circle(435, 150, 18, "×")
    s.line([(392, 220), (425, 167)])                                 # i into ×
    s.line([(478, 220), (445, 167)])                                 # g into ×
    s.line([(445, 134), (492, 90)])                                  # i⊙g into +
    # output
    s.box(600, 120, 70, 36, "tanh", fill="#f7f7f7", size=13)
    s.line([(620, 70), (620, 118)])
    s.circle(660, 200, 18, "×")
    s.line([(650, 158), (656, 182)])
    s.line([(580, 220), (644, 207)])                                 # o into ×
    s.line([(678, 200), (725, 200), (725, 250)])
    s.text(725, 272, "h_t", size=16, italic=True)
    s.text(40, 200, "f keeps, i writes,\ng proposes, o shows", size=13, anchor="start", color=GREY)
    return s.render()


def replay_window() -> str:
    """Chapter 4: a window sampled from a stored episode: burn-in, loss steps, and where the state comes from."""
    s = new(820, 330, "DRQN sequence replay: a stored episode, one sampled window with K burn-in and L loss steps")
    s.text(20, 40, "a stored episode (observations, actions, rewards, and the actor's LSTM state at every step)",
           size=13, anchor="start")
    x0, w, n = 20, 34, 22
    for t in range(n):
        fill = "#ffffff"
        if 6 <= t < 10:
            fill = "#e6e6e6"
        elif 10 <= t < 18:
            fill = "#dce6f5"
        s.box(x0 + t * w, 60, w - 4, 34, f"{t}", fill=fill, size=11, rx=3)
    s.text(x0 + 8 * w + 6, 112, "burn-in: K steps", size=13, color=GREY)
    s.text(x0 + 14 * w, 112, "loss: L steps", size=13, color=BLUE)
    # stored state
    s.line([(x0 + 6 * w - 2, 140), (x0 + 6 * w - 2, 98)], color=ORANGE)
    s.text(x0 + 6 * w - 2, 158, "start state: zeros, or the\nstored (stale) actor state", size=12, color=ORANGE)
    s.line([(x0 + 6 * w - 2, 176), (x0 + 6 * w - 2, 198)], color=ORANGE)
    # online network path
    s.box(x0 + 6 * w, 200, 4 * w - 4, 40, "LSTM, no gradient", fill="#e6e6e6", size=12)
    s.box(x0 + 10 * w, 200, 8 * w - 4, 40, "LSTM with gradient → Q(h_t, a_t)", fill="#dce6f5", size=12)
    s.line([(x0 + 10 * w - 6, 220), (x0 + 10 * w - 2, 220)], color=INK)
    s.text(x0 + 8 * w, 258, "warms the state up", size=12, color=GREY)
    # target
    s.box(x0 + 6 * w, 280, 12 * w - 4, 36, "target network: same start state, burn-in, window → y_t",
          fill="#fbeee6", size=12)
    s.text(x0 + 2.8 * w, 298, "loss = mean over the L steps\nof Huber(Q − y), padding masked", size=12, color=INK)
    return s.render()


def ppo_segments() -> str:
    """Chapter 5: from a rollout to the fused LSTM call of one PPO minibatch."""
    s = new(900, 330, "Recurrent PPO: rollout, segments cut at episode starts, a padded minibatch, one fused LSTM call")
    s.text(20, 30, "1. rollout: N envs × T steps (| = an episode starts)", size=13, anchor="start", bold=True)
    starts = {0: [5], 1: [2, 9], 2: []}
    for e in range(3):
        y = 45 + e * 30
        s.box(20, y, 12 * 22, 24, "", fill="#f4f4f4", rx=3)
        for t in starts[e]:
            s.line([(20 + t * 22, y - 3), (20 + t * 22, y + 27)], color=RED, width=2.5, arrow=False)
        s.text(300, y + 12, f"env {e}", size=12, anchor="start", color=GREY)
    s.line([(360, 90), (410, 90)])
    s.text(430, 22, "2. segments, cut where an episode starts", size=13, anchor="start", bold=True)
    s.text(430, 42, "● start state: the stored rollout-start state, or zeros after a reset", size=12, anchor="start",
           color=GREY)
    segs = [(0, 5), (5, 7), (0, 2), (2, 7), (9, 3), (0, 12)]
    for k, (a, L) in enumerate(segs):
        y = 62 + k * 17
        s.box(430 + a * 18, y, L * 18, 14, "", fill="#dce6f5", rx=2)
        s.circle(430 + a * 18, y + 7, 4, fill=ORANGE)
    s.line([(640, 180), (640, 205)])
    s.text(20, 220, "3. a minibatch of whole env columns (here envs 2 and 0): their segments, padded to the longest",
           size=13, anchor="start", bold=True)
    for k, L in enumerate([12, 5, 7]):
        for t in range(12):
            s.box(20 + t * 20, 235 + k * 20, 18, 16, "", fill="#dce6f5" if t < L else "#ffffff",
                  stroke=INK if t < L else GREY, rx=2, dash=None if t < L else "3,2")
    s.line([(280, 275), (340, 275)])
    s.box(350, 245, 260, 60, "4. one fused LSTM call; padded\noutputs are dropped", fill="#eef3fb", size=12)
    s.line([(610, 275), (650, 275)])
    s.box(660, 245, 225, 60, "5. clipped policy loss, value loss,\nentropy: averaged over real steps", fill="#fbeee6", size=12)
    return s.render()


def world_model() -> str:
    """Chapter 6: V compresses the frame, M remembers, C acts."""
    s = new(780, 300, "World Models: V encodes each frame to z_t, M (an LSTM) carries h_t, C acts on [z_t, h_t]")
    s.box(20, 110, 90, 70, "frame\n64 × 64", fill="#f4f4f4", size=13)
    s.line([(110, 145), (160, 145)])
    s.box(160, 110, 110, 70, "V\nVAE encoder", fill="#eef3fb", size=13)
    s.line([(270, 145), (300, 145)], arrow=False)
    s.text(285, 128, "z_t", size=15, italic=True)
    s.box(320, 30, 150, 70, "M\nLSTM + MDN", fill="#e8f4ec", size=13)
    s.line([(300, 145), (300, 65), (318, 65)])
    s.line([(300, 145), (300, 160), (338, 160)])
    s.line([(470, 55), (560, 55)], dash="5,3")
    s.text(640, 45, "predicts p(z_{t+1})", size=12, color=GREY)
    s.text(640, 65, "(trained on recorded play)", size=12, color=GREY)
    s.line([(395, 100), (395, 128)])
    s.text(412, 114, "h_t", size=15, italic=True)
    s.text(386, 114, "(has read z, a up to t − 1)", size=11, color=GREY, anchor="end")
    s.box(340, 130, 140, 60, "C  linear\na_t = 1[w·[z_t, h_t] + b > 0]", fill="#fbeee6", size=11)
    s.line([(480, 160), (560, 160)])
    s.text(535, 145, "a_t", size=15, italic=True)
    s.box(560, 125, 130, 70, "environment\n(CartPole)", fill="#f4f4f4", size=13)
    s.line([(625, 195), (625, 250), (65, 250), (65, 182)])
    s.text(345, 265, "next frame", size=12, color=GREY)
    s.line([(510, 160), (510, 85), (472, 85)], dash="4,3", color=GREEN)
    s.text(610, 100, "then M reads z_t and a_t", size=12, color=GREEN)
    return s.render()


DIAGRAMS = {"lstm_cell": lstm_cell, "replay_window": replay_window, "ppo_segments": ppo_segments,
            "world_model": world_model}


#: How a chapter's Markdown shows a diagram: an inline SVG in an <img> tag, named by its title (Markdown's
#: own image syntax will not take an SVG data URI in every renderer; the tag works in all three).
INLINE = re.compile(r'<img src="data:image/svg\+xml;base64,[A-Za-z0-9+/=]*" alt="([^"]*)" title="([a-z_]+)"[^>]*>'
                    r'|!\[([^\]]*)\]\((?:data:image/svg\+xml;base64,[A-Za-z0-9+/=]*|diagrams/[a-z_]+\.svg) "([a-z_]+)"\)')


def inline(name: str, description: str) -> str:
    data = base64.b64encode(DIAGRAMS[name]().encode()).decode()
    return f'<img src="data:image/svg+xml;base64,{data}" alt="{escape(description, quote=True)}" title="{name}" width="100%">'


def update_chapters() -> list[str]:
    """Put the current drawing of every diagram into the chapters that show it (Markdown cells only)."""
    changed = []
    for path in sorted(HERE.parent.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        touched = False
        for cell in nb["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            new = INLINE.sub(lambda m: inline(m.group(2) or m.group(4), m.group(1) or m.group(3)), src)
            if new != src:
                cell["source"], touched = new.splitlines(keepends=True), True
        if touched:     # written as nbformat writes a notebook, so that the diff shows only the change
            path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
            changed.append(path.name)
    return changed


def main() -> None:
    for name, draw in DIAGRAMS.items():
        (HERE / f"{name}.svg").write_text(draw())
        print(f"wrote chapters/diagrams/{name}.svg")
    for name in update_chapters():
        print(f"updated the diagrams shown in chapters/{name}")


if __name__ == "__main__":
    main()
