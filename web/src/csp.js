// CodeMirror's styles under the page's Content-Security-Policy (style-src 'self', no inline styles).
//
// style-mod (CodeMirror's CSS-in-JS) writes a <style> element into a document, which that policy
// blocks; into a shadow root it uses a constructed stylesheet (document.adoptedStyleSheets),
// which the policy allows. This hands it the document as such a root: the same rules, in the same
// order, in an adopted stylesheet. Import it before anything creates an EditorView.
import { StyleModule } from 'style-mod';

const original = StyleModule.mount;
const documentRoot = {
  ownerDocument: document,
  head: null,
  get adoptedStyleSheets() { return document.adoptedStyleSheets; },
  set adoptedStyleSheets(sheets) { document.adoptedStyleSheets = sheets; },
};

if ('adoptedStyleSheets' in Document.prototype && typeof CSSStyleSheet === 'function') {
  StyleModule.mount = (root, modules, options) => original.call(StyleModule, root === document ? documentRoot : root,
    modules, options);
}
