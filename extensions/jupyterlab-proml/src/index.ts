/**
 * ProML Lab for JupyterLab: this module only wires the plugins together.
 */
import { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { experimentsPlugin } from './experiments';
import { marketplacePlugin } from './marketplace';
import { modelsPlugin } from './models';
import { quasarPlugin } from './quasar';
import { templatesPlugin } from './templates';

const plugins: JupyterFrontEndPlugin<any>[] = [
  marketplacePlugin,
  modelsPlugin,
  experimentsPlugin,
  quasarPlugin,
  templatesPlugin
];

export default plugins;
