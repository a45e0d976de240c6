/**
 * The one way the extension talks to the ProML server extension: `<baseUrl>/proml/...`.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** A feature search hit, as `GET proml/features` returns it. */
export interface IFeatureHit {
  name: string;
  entity: string;
  type: string;
  description: string;
  owner: string | null;
  tags: string[];
  online: boolean;
  score: number;
  /** The `INPUT <SCOPE> <type> <name>;` line for a `%%quasar` cell. */
  reference: string;
}

/** `GET proml/features/<name>`: everything the marketplace knows about one feature. */
export interface IFeatureDetail {
  feature: { name: string; entity: string; type: string; description: string; owner: string | null };
  versions: unknown[];
  lineage: string[];
  stats: { batch: number | null; stats: Record<string, unknown> }[];
  online: { freshness: string; rows: number | null; materialized_at: string | null };
}

/** A tracked MLflow run. */
export interface IModelRun {
  id: string;
  name: string;
  status: string;
  start_time: string;
  metrics: Record<string, number>;
  params: Record<string, string>;
}

/** `GET proml/models/compare`: Metric | a | b | Lift. */
export interface IComparison {
  names: [string, string];
  runs: [string, string];
  metrics: { metric: string; baseline: number | null; new: number | null; lift: number | null }[];
  rows: string[][];
}

/** One registered version of a model (MLflow Model Registry). */
export interface IModelVersion {
  name: string;
  version: string;
  run_id: string | null;
  source: string;
  aliases: string[];
  metrics: Record<string, number>;
  features: string[];
  data_fingerprint: string | null;
  program: string | null;
  description: string;
  created_at: string | null;
}

/** `GET proml/registry`: a registered model with its versions, newest first. */
export interface IRegisteredModel {
  name: string;
  description: string;
  latest_version: string | null;
  aliases: Record<string, string>;
  created_at: string | null;
  versions: IModelVersion[];
}

/** A new-model template. */
export interface ITemplate {
  name: string;
  kind: 'quasar' | 'notebook';
  description: string;
  text: string;
}

/** How to send a request: GET by default; `body` is sent as JSON. */
export interface IRequestOptions {
  method?: 'GET' | 'POST';
  body?: unknown;
}

/**
 * Call `<baseUrl>/proml/<path...>?<query>` (GET, or POST with a JSON body) and return its JSON.
 *
 * Path parts are URL-encoded; query values that are empty or undefined are left out. A non-2xx
 * answer throws a `ServerConnection.ResponseError` carrying the server's `message`.
 */
export async function requestAPI<T>(
  path: string[],
  query: Record<string, string | number | undefined> = {},
  options: IRequestOptions = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const kept: Record<string, string> = {};
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== '') {
      kept[key] = String(value);
    }
  }
  const url =
    URLExt.join(settings.baseUrl, 'proml', ...path.map(encodeURIComponent)) +
    (Object.keys(kept).length ? URLExt.objectToQueryString(kept) : '');
  const init: RequestInit = {};
  if (options.method && options.method !== 'GET') {
    init.method = options.method;
  }
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  let data: any = text;
  try {
    data = text ? JSON.parse(text) : {};
  } catch (error) {
    // not JSON (a proxy's error page): keep the text for the message
  }
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, data?.message ?? String(data));
  }
  return data as T;
}

/** One arm of an A/B experiment: a serving alias of the model and its relative weight. */
export interface IExperimentArm {
  name: string;
  alias: string;
  weight: number;
}

/** `GET proml/experiments`: an experiment's definition. */
export interface IExperiment {
  name: string;
  model: string;
  arms: IExperimentArm[];
  layer: string;
  traffic: number;
  share: number;
  bucket_range: [number, number];
  ramp: { at: string; traffic: number }[];
  status: 'draft' | 'running' | 'stopped';
  created_at: string | null;
  started_at: string | null;
  stopped_at: string | null;
  description: string;
}

/** One row of the analysis table: a metric in an arm (the control row has no lift). */
export interface IExperimentMetric {
  metric: string;
  kind: string;
  arm: string;
  n: number;
  mean: number | null;
  lift: number | null;
  lift_low: number | null;
  lift_high: number | null;
  rel_lift: number | null;
  rel_low: number | null;
  rel_high: number | null;
  p_value: number | null;
  p_always_valid?: number | null;
  cuped_rel_lift?: number | null;
}

/** The sample-ratio-mismatch check. */
export interface ISRM {
  arms: string[];
  counts: number[];
  expected: number[];
  chi2: number;
  p: number;
  flagged: boolean;
}

/** `GET proml/experiments/<name>`: the experiment's report (analysis is null before any exposure). */
export interface IExperimentReport {
  experiment: IExperiment;
  arms: (IExperimentArm & { units: number })[];
  units: number;
  alpha: number;
  decision: 'ramp up' | 'hold' | 'roll back' | null;
  srm: ISRM | null;
  srm_line: string;
  message: string;
  analysis: {
    control: string;
    primary: string;
    reasons: string[];
    metrics: IExperimentMetric[];
  } | null;
}
