/**
 * `%%quasar` cells: a CodeMirror 6 stream language for Quasar, and the `text/x-quasar` mime type on
 * CODE cells whose source starts with `%%quasar` (never on Markdown or raw cells).
 *
 * JupyterLab resets code cells' mime types when the kernel's language info changes and when cells are
 * inserted, so the mime type is re-applied whenever a cell's content or mime type changes, and the
 * notebook's own code mime type is restored when the magic is removed.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICellModel } from '@jupyterlab/cells';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LanguageSupport, StreamLanguage, StringStream } from '@codemirror/language';

export const QUASAR_MIME = 'text/x-quasar';
export const MAGIC = '%%quasar';

const KEYWORDS = new Set([
  'AND', 'ASC', 'BY', 'CONFIG', 'DESC', 'DIVERSIFY', 'DOCUMENT', 'DOCUMENTS', 'EXTENDS', 'FILTER',
  'INPUT', 'KEEP', 'MAX', 'MEMBER', 'MODEL', 'NOT', 'OF', 'OR', 'ORDER', 'REQUEST', 'RETURN', 'TOP',
  'TRAINABLE', 'TRAINING', 'WHERE', 'WITH'
]);
const TYPES = new Set(['double', 'Vector', 'String', 'Categorical', 'List']);
const ATOMS = new Set(['true', 'false', 'null']);

/** The Quasar tokenizer: keywords, types, atoms, numbers, strings, comments, the magic line. */
export const quasarMode = {
  name: 'quasar',
  token(stream: StringStream): string | null {
    if (stream.sol() && stream.match(/^%%quasar\b.*/)) {
      return 'meta';
    }
    if (stream.eatSpace()) {
      return null;
    }
    if (stream.match('//')) {
      stream.skipToEnd();
      return 'comment';
    }
    if (stream.match(/^"(?:[^"\\]|\\.)*"?/)) {
      return 'string';
    }
    if (stream.match(/^\d[\d_]*(\.\d+)?([eE][+-]?\d+)?/)) {
      return 'number';
    }
    const word = stream.match(/^[A-Za-z_][A-Za-z0-9_]*/) as RegExpMatchArray | null;
    if (word) {
      const text = word[0];
      if (KEYWORDS.has(text)) {
        return 'keyword';
      }
      if (TYPES.has(text)) {
        return 'builtin'; // JupyterLab's highlight style colours standard names, not typeName
      }
      if (ATOMS.has(text)) {
        return 'atom';
      }
      return 'variableName';
    }
    if (stream.match(/^(==|!=|<=|>=|[-+*/<>=])/)) {
      return 'operator';
    }
    stream.next();
    return null;
  }
};

/** True when a cell model is a code cell whose source starts with the magic. */
export function isQuasarCell(model: ICellModel): boolean {
  return model.type === 'code' && model.sharedModel.getSource().trimStart().startsWith(MAGIC);
}

/** Keep `text/x-quasar` on the `%%quasar` code cells of one notebook. */
function trackNotebook(panel: NotebookPanel): void {
  const notebook = panel.content;
  const watched = new WeakSet<ICellModel>();

  const apply = (model: ICellModel): void => {
    if (model.type !== 'code') {
      return; // Markdown and raw cells keep their own mime types
    }
    const wanted = isQuasarCell(model) ? QUASAR_MIME : notebook.codeMimetype;
    if (model.mimeType !== wanted && (wanted === QUASAR_MIME || model.mimeType === QUASAR_MIME)) {
      model.mimeType = wanted;
    }
  };
  const watch = (model: ICellModel): void => {
    if (model.type !== 'code' || watched.has(model)) {
      return;
    }
    watched.add(model);
    model.contentChanged.connect(() => apply(model));
    model.mimeTypeChanged.connect(() => apply(model));
    apply(model);
  };
  const watchAll = (): void => {
    const cells = notebook.model?.cells;
    if (!cells) {
      return;
    }
    for (let i = 0; i < cells.length; i++) {
      watch(cells.get(i));
    }
  };

  const connectModel = (): void => {
    const model = notebook.model;
    if (!model) {
      return;
    }
    model.cells.changed.connect(() => watchAll());
    model.metadataChanged.connect(() => setTimeout(watchAllAndApply, 0));
    watchAll();
  };
  const watchAllAndApply = (): void => {
    watchAll();
    const cells = notebook.model?.cells;
    for (let i = 0; cells && i < cells.length; i++) {
      apply(cells.get(i));
    }
  };
  notebook.modelChanged.connect(connectModel);
  connectModel();
  void panel.context.ready.then(watchAllAndApply);
}

export const quasarPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-proml:quasar',
  description: 'Quasar syntax highlighting in %%quasar cells.',
  autoStart: true,
  requires: [IEditorLanguageRegistry, INotebookTracker],
  activate: (
    app: JupyterFrontEnd,
    languages: IEditorLanguageRegistry,
    tracker: INotebookTracker
  ) => {
    languages.addLanguage({
      name: 'quasar',
      displayName: 'Quasar',
      mime: QUASAR_MIME,
      extensions: ['quasar'],
      support: new LanguageSupport(StreamLanguage.define(quasarMode))
    });
    tracker.widgetAdded.connect((_, panel) => trackNotebook(panel));
    tracker.forEach(panel => trackNotebook(panel));
  }
};
