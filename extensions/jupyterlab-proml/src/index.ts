/**
 * ProML Lab for JupyterLab: this module only wires the plugins together.
 */
import { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { marketplacePlugin } from './marketplace';
import { modelsPlugin } from './models';
import { quasarPlugin } from './quasar';
import { templatesPlugin } from './templates';

const plugins: JupyterFrontEndPlugin<any>[] = [marketplacePlugin, modelsPlugin, quasarPlugin, templatesPlugin];

export default plugins;
