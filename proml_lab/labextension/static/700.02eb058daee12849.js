"use strict";(self.rspackChunkjupyterlab_proml=self.rspackChunkjupyterlab_proml||[]).push([[700],{646(r,e,o){var t=o(601),n=o.n(t),a=o(314),i=(o.n(a))()(n());i.push([r.id,`.proml-panel {
  padding: 8px;
  overflow: auto;
  font-size: var(--jp-ui-font-size1);
  color: var(--jp-ui-font-color1);
  background: var(--jp-layout-color1);
}
.proml-panel h3 { margin: 0 0 8px; }
.proml-row { display: flex; gap: 4px; margin-bottom: 4px; }
.proml-row input { flex: 1; min-width: 0; }
.proml-results { list-style: none; padding: 0; margin: 4px 0; max-height: 40%; overflow: auto; }
.proml-hit { padding: 2px 4px; cursor: pointer; }
.proml-hit:hover, .proml-hit.jp-mod-selected { background: var(--jp-layout-color2); }
.proml-hit-name { font-weight: 600; }
.proml-hit-meta { color: var(--jp-ui-font-color2); }
.proml-detail code { display: block; margin: 4px 0; white-space: pre-wrap; }
.proml-table { border-collapse: collapse; margin-top: 6px; }
.proml-table th, .proml-table td { padding: 2px 6px; border-bottom: 1px solid var(--jp-border-color2); text-align: right; }
.proml-up { color: #1a7f37; }
.proml-down { color: #cf222e; }
.proml-publish-status { margin: 6px 0; }
.proml-publish-status.proml-error { color: var(--jp-error-color1); }
.proml-registered { margin: 6px 0; }
.proml-registered-name { font-weight: 600; }
.proml-badge {
  display: inline-block; margin-right: 3px; padding: 0 5px; border-radius: 8px;
  background: var(--jp-brand-color1); color: white; font-size: var(--jp-ui-font-size0);
}
.proml-publish { margin-left: 6px; padding: 0 6px; }
.proml-run-name { white-space: nowrap; text-align: left !important; }
.proml-scroll { overflow-x: auto; max-width: 100%; }
.proml-publish-form label { display: block; margin-bottom: 6px; }
.proml-publish-form input { display: block; width: 100%; box-sizing: border-box; margin-top: 2px; }
`,""]),o.d(e,{},{A:i})},314(r){r.exports=function(r){var e=[];return e.toString=function(){return this.map(function(e){var o="",t=void 0!==e[5];return e[4]&&(o+="@supports (".concat(e[4],") {")),e[2]&&(o+="@media ".concat(e[2]," {")),t&&(o+="@layer".concat(e[5].length>0?" ".concat(e[5]):""," {")),o+=r(e),t&&(o+="}"),e[2]&&(o+="}"),e[4]&&(o+="}"),o}).join("")},e.i=function(r,o,t,n,a){"string"==typeof r&&(r=[[null,r,void 0]]);var i={};if(t)for(var p=0;p<this.length;p++){var l=this[p][0];null!=l&&(i[l]=!0)}for(var s=0;s<r.length;s++){var c=[].concat(r[s]);t&&i[c[0]]||(void 0!==a&&(void 0===c[5]||(c[1]="@layer".concat(c[5].length>0?" ".concat(c[5]):""," {").concat(c[1],"}")),c[5]=a),o&&(c[2]&&(c[1]="@media ".concat(c[2]," {").concat(c[1],"}")),c[2]=o),n&&(c[4]?(c[1]="@supports (".concat(c[4],") {").concat(c[1],"}"),c[4]=n):c[4]="".concat(n)),e.push(c))}},e}},601(r){r.exports=function(r){return r[1]}},72(r){var e=[];function o(r){for(var o=-1,t=0;t<e.length;t++)if(e[t].identifier===r){o=t;break}return o}function t(r,t){for(var n={},a=[],i=0;i<r.length;i++){var p=r[i],l=t.base?p[0]+t.base:p[0],s=n[l]||0,c="".concat(l," ").concat(s);n[l]=s+1;var u=o(c),d={css:p[1],media:p[2],sourceMap:p[3],supports:p[4],layer:p[5]};if(-1!==u)e[u].references++,e[u].updater(d);else{var m=function(r,e){var o=e.domAPI(e);return o.update(r),function(e){e?(e.css!==r.css||e.media!==r.media||e.sourceMap!==r.sourceMap||e.supports!==r.supports||e.layer!==r.layer)&&o.update(r=e):o.remove()}}(d,t);t.byIndex=i,e.splice(i,0,{identifier:c,updater:m,references:1})}a.push(c)}return a}r.exports=function(r,n){var a=t(r=r||[],n=n||{});return function(r){r=r||[];for(var i=0;i<a.length;i++){var p=o(a[i]);e[p].references--}for(var l=t(r,n),s=0;s<a.length;s++){var c=o(a[s]);0===e[c].references&&(e[c].updater(),e.splice(c,1))}a=l}}},659(r){var e={};r.exports=function(r,o){var t=function(r){if(void 0===e[r]){var o=document.querySelector(r);if(window.HTMLIFrameElement&&o instanceof window.HTMLIFrameElement)try{o=o.contentDocument.head}catch(r){o=null}e[r]=o}return e[r]}(r);if(!t)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");t.appendChild(o)}},540(r){r.exports=function(r){var e=document.createElement("style");return r.setAttributes(e,r.attributes),r.insert(e,r.options),e}},56(r,e,o){r.exports=function(r){var e=o.nc;e&&r.setAttribute("nonce",e)}},825(r){r.exports=function(r){if("u"<typeof document)return{update:function(){},remove:function(){}};var e=r.insertStyleElement(r);return{update:function(o){var t,n,a;t="",o.supports&&(t+="@supports (".concat(o.supports,") {")),o.media&&(t+="@media ".concat(o.media," {")),(n=void 0!==o.layer)&&(t+="@layer".concat(o.layer.length>0?" ".concat(o.layer):""," {")),t+=o.css,n&&(t+="}"),o.media&&(t+="}"),o.supports&&(t+="}"),(a=o.sourceMap)&&"u">typeof btoa&&(t+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(a))))," */")),r.styleTagTransform(t,e,r.options)},remove:function(){var r;null===(r=e).parentNode||r.parentNode.removeChild(r)}}}},113(r){r.exports=function(r,e){if(e.styleSheet)e.styleSheet.cssText=r;else{for(;e.firstChild;)e.removeChild(e.firstChild);e.appendChild(document.createTextNode(r))}}},959(r,e,o){var t=o(72),n=o.n(t),a=o(825),i=o.n(a),p=o(659),l=o.n(p),s=o(56),c=o.n(s),u=o(540),d=o.n(u),m=o(113),f=o.n(m),h=o(646),v={};v.styleTagTransform=f(),v.setAttributes=c(),v.insert=l().bind(null,"head"),v.domAPI=i(),v.insertStyleElement=d(),n()(h.A,v),h.A&&h.A.locals&&h.A.locals}}]);