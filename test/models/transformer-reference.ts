/**
 * A float64 decoder-only Transformer written from the block formulas (Vaswani et al.; Xiong et al.; Peri-LN;
 * DeepNet; NormFormer; nGPT), independent of normkit's layers. It reads weights by their saved names
 * (`block0_attn/query_kernel`, `block0_fc1/kernel`, ...) in the tfjs [in, out] layout.
 */

export type Weights = Map<string, { values: Float64Array; shape: number[] }>;

export interface RefConfig {
  vocabSize: number;
  dModel: number;
  heads: number;
  layers: number;
  placement: 'post' | 'pre' | 'peri' | 'deepnorm' | 'normformer' | 'ngpt' | 'none';
  /** 'layer': (x - mean)/sqrt(var + eps) * gamma + beta; 'rms': x / sqrt(mean(x^2) + eps) * scale. */
  norm: 'layer' | 'rms';
  epsilon: number;
  activation: 'gelu' | 'relu';
  /** DeepNorm's residual multiplier. */
  alpha?: number;
  /** Rotary position embedding on q and k (half-split form, base 10000). */
  rope?: boolean;
}

type Vec = Float64Array;

/**
 * erf in float64: Maclaurin series for |x| < 2 (terms stay below 10, so no cancellation), and for |x| >= 2
 * 1 - erfc(x) with erfc's continued fraction exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))).
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2) {
    let term = x;
    let sum = x;
    for (let n = 1; n < 100; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  let t = ax;
  for (let n = 80; n >= 1; n--) t = ax + n / 2 / t;
  return Math.sign(x) * (1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / t);
}

function get(w: Weights, name: string): Float64Array | undefined {
  return w.get(name)?.values;
}

function must(w: Weights, name: string): Float64Array {
  const v = get(w, name);
  if (v === undefined) throw new Error(`reference: missing weight ${name}`);
  return v;
}

/** y = x W (+ b), W of shape [n, m] row-major. */
function linear(x: Vec, kernel: Float64Array, m: number, bias?: Float64Array): Vec {
  const n = x.length;
  const y = new Float64Array(m);
  for (let j = 0; j < m; j++) {
    let s = bias ? bias[j] : 0;
    for (let i = 0; i < n; i++) s += x[i] * kernel[i * m + j];
    y[j] = s;
  }
  return y;
}

function dense(w: Weights, name: string, x: Vec): Vec {
  const k = w.get(`${name}/kernel`)!;
  return linear(x, k.values, k.shape[1], get(w, `${name}/bias`));
}

function normalize(w: Weights, cfg: RefConfig, name: string, x: Vec): Vec {
  const n = x.length;
  let mean = 0;
  if (cfg.norm === 'layer') {
    for (const v of x) mean += v;
    mean /= n;
  }
  let ms = 0;
  for (const v of x) ms += (v - mean) ** 2;
  ms /= n;
  const r = 1 / Math.sqrt(ms + cfg.epsilon);
  const gamma = get(w, `${name}/gamma`) ?? get(w, `${name}/scale`);
  const beta = get(w, `${name}/beta`);
  return x.map((v, i) => (v - mean) * r * (gamma ? gamma[i] : 1) + (beta ? beta[i] : 0));
}

function unit(x: Vec): Vec {
  const n = Math.sqrt(x.reduce((s, v) => s + v * v, 0));
  return x.map((v) => v / n);
}

function add(a: Vec, b: Vec, scaleA = 1, weightA?: Float64Array): Vec {
  return a.map((v, i) => v * scaleA * (weightA ? weightA[i] : 1) + b[i]);
}

/** Causal self-attention over one sequence xs[t] (each a d-vector); the value path reads xsV when given. */
export function attention(w: Weights, cfg: RefConfig, name: string, xs: Vec[], xsV: Vec[] = xs): Vec[] {
  const d = cfg.dModel;
  const h = cfg.heads;
  const dh = d / h;
  const proj = (kind: string, input = xs) => input.map((x) => linear(x, must(w, `${name}/${kind}_kernel`), d, get(w, `${name}/${kind}_bias`)));
  let q = proj('query');
  let k = proj('key');
  const v = proj('value', xsV);
  if (cfg.rope) {
    // Each head's pair (x_i, x_{i + dh/2}) rotated by the angle t * 10000^(-2i/dh).
    const rot = (t: Vec, pos: number) => {
      const out = Float64Array.from(t);
      for (let hh = 0; hh < h; hh++) {
        for (let i = 0; i < dh / 2; i++) {
          const angle = pos * 10000 ** ((-2 * i) / dh);
          const a = t[hh * dh + i];
          const b = t[hh * dh + dh / 2 + i];
          out[hh * dh + i] = a * Math.cos(angle) - b * Math.sin(angle);
          out[hh * dh + dh / 2 + i] = b * Math.cos(angle) + a * Math.sin(angle);
        }
      }
      return out;
    };
    q = q.map(rot);
    k = k.map(rot);
  }
  let scale = 1 / Math.sqrt(dh);
  const sqk = get(w, `${name}/qk_scale`);
  if (sqk) {
    // nGPT: per head, q and k to unit norm, times s_qk * (1 / (1/sqrt(d))) (stored scaled by 1/sqrt(d)).
    const perHead = (t: Vec) => {
      const out = new Float64Array(d);
      for (let hh = 0; hh < h; hh++) {
        const part = unit(t.slice(hh * dh, (hh + 1) * dh));
        for (let i = 0; i < dh; i++) out[hh * dh + i] = part[i] * sqk[hh * dh + i] * Math.sqrt(d);
      }
      return out;
    };
    q = q.map(perHead);
    k = k.map(perHead);
    scale = Math.sqrt(dh);
  }
  const headScale = get(w, `${name}/head_scale`);
  const outs: Vec[] = [];
  for (let t = 0; t < xs.length; t++) {
    const concat = new Float64Array(d);
    for (let hh = 0; hh < h; hh++) {
      const scores: number[] = [];
      for (let j = 0; j <= t; j++) {
        let s = 0;
        for (let i = 0; i < dh; i++) s += q[t][hh * dh + i] * k[j][hh * dh + i];
        scores.push(s * scale);
      }
      const mx = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - mx));
      const z = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j <= t; j++) {
        for (let i = 0; i < dh; i++) concat[hh * dh + i] += (e[j] / z) * v[j][hh * dh + i] * (headScale ? headScale[hh] : 1);
      }
    }
    outs.push(linear(concat, must(w, `${name}/output_kernel`), d, get(w, `${name}/output_bias`)));
  }
  return outs;
}

function activate(cfg: RefConfig, x: Vec): Vec {
  return cfg.activation === 'relu' ? x.map((v) => Math.max(v, 0)) : x.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
}

function mlp(w: Weights, cfg: RefConfig, p: string, x: Vec): Vec {
  if (cfg.placement === 'ngpt') {
    const uv = dense(w, `${p}_fc1`, x);
    const suv = must(w, `${p}_fc_scale/scale`);
    const half = uv.length / 2;
    const g = new Float64Array(half);
    for (let i = 0; i < half; i++) {
      const u = uv[i] * suv[i] * Math.sqrt(cfg.dModel);
      const v = uv[half + i] * suv[half + i] * Math.sqrt(cfg.dModel);
      g[i] = u * (v / (1 + Math.exp(-v)));
    }
    return dense(w, `${p}_fc2`, g);
  }
  let h = activate(cfg, dense(w, `${p}_fc1`, x));
  if (cfg.placement === 'normformer') h = normalize(w, cfg, `${p}_fc_norm`, h);
  return dense(w, `${p}_fc2`, h);
}

/** Logits [B][T] -> Float64Array(V) for integer tokens [B][T]. */
export function referenceLM(w: Weights, cfg: RefConfig, tokens: number[][]): Float64Array {
  const d = cfg.dModel;
  const tokTable = must(w, 'embed/token_embeddings');
  const posTable = get(w, 'embed/position_embeddings');
  const out: number[] = [];
  for (const seq of tokens) {
    let xs: Vec[] = seq.map((tok, t) => {
      const e = new Float64Array(d);
      for (let i = 0; i < d; i++) e[i] = tokTable[tok * d + i] + (posTable ? posTable[t * d + i] : 0);
      return cfg.placement === 'ngpt' ? unit(e) : e;
    });
    for (let l = 0; l < cfg.layers; l++) {
      const p = `block${l}`;
      for (const part of ['attn', 'mlp'] as const) {
        const q = `${p}_${part}`;
        const f = (input: Vec[]) => (part === 'attn' ? attention(w, cfg, `${p}_attn`, input) : input.map((x) => mlp(w, cfg, p, x)));
        switch (cfg.placement) {
          case 'post':
          case 'deepnorm': {
            const fx = f(xs);
            xs = xs.map((x, t) => normalize(w, cfg, `${q}_post_norm`, add(x, fx[t], cfg.placement === 'deepnorm' ? cfg.alpha : 1)));
            break;
          }
          case 'pre': {
            const fx = f(xs.map((x) => normalize(w, cfg, `${q}_norm`, x)));
            xs = xs.map((x, t) => add(x, fx[t]));
            break;
          }
          case 'none': {
            const fx = f(xs);
            xs = xs.map((x, t) => add(x, fx[t]));
            break;
          }
          case 'peri': {
            const fx = f(xs.map((x) => normalize(w, cfg, `${q}_norm`, x))).map((y) => normalize(w, cfg, `${q}_out_norm`, y));
            xs = xs.map((x, t) => add(x, fx[t]));
            break;
          }
          case 'normformer': {
            let fx = f(xs.map((x) => normalize(w, cfg, `${q}_norm`, x)));
            if (part === 'attn') fx = fx.map((y) => normalize(w, cfg, `${q}_out_norm`, y));
            xs = xs.map((x, t) => add(x, fx[t], 1, get(w, `${q}_add/residual_scale`)));
            break;
          }
          case 'ngpt': {
            const fx = f(xs);
            const alpha = must(w, `${q}_residual/alpha`);
            // |alpha_stored * 0.05 / (1/sqrt(d))|
            xs = xs.map((x, t) => {
              const a = unit(x);
              const b = unit(fx[t]);
              return unit(a.map((v, i) => v + Math.abs(alpha[i] * 0.05 * Math.sqrt(d)) * (b[i] - v)));
            });
            break;
          }
        }
      }
    }
    if (['pre', 'peri', 'normformer'].includes(cfg.placement)) xs = xs.map((x) => normalize(w, cfg, 'final_norm', x));
    for (const x of xs) {
      let z = dense(w, 'lm_head', x);
      const sz = get(w, 'logit_scale/scale');
      if (sz) z = z.map((v, i) => v * sz[i] * Math.sqrt(d));
      out.push(...z);
    }
  }
  return Float64Array.from(out);
}

/** Mean over tokens of logsumexp(z) - z[target], in float64. */
export function referenceCrossEntropy(logits: ArrayLike<number>, targets: number[], vocab: number): number {
  let total = 0;
  for (let r = 0; r < targets.length; r++) {
    const z = Array.from({ length: vocab }, (_, j) => logits[r * vocab + j]);
    const m = Math.max(...z);
    total += m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0)) - z[targets[r]];
  }
  return total / targets.length;
}
