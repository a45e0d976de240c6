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

/** A new-model template. */
export interface ITemplate {
  name: string;
  kind: 'quasar' | 'notebook';
  description: string;
  text: string;
}

/**
 * GET `<baseUrl>/proml/<path...>?<query>` and return its JSON.
 *
 * Path parts are URL-encoded; query values that are empty or undefined are left out. A non-2xx
 * answer throws a `ServerConnection.ResponseError` carrying the server's `message`.
 */
export async function requestAPI<T>(
  path: string[],
  query: Record<string, string | number | undefined> = {}
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
  const response = await ServerConnection.makeRequest(url, {}, settings);
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
