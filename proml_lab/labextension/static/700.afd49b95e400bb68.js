"use strict";(self.rspackChunkjupyterlab_proml=self.rspackChunkjupyterlab_proml||[]).push([[700],{646(r,o,t){var e=t(601),a=t.n(e),n=t(314),p=(t.n(n))()(a());p.push([r.id,`.proml-panel {
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
.proml-experiment { cursor: pointer; }
.proml-experiment:hover, .proml-experiment.jp-mod-selected { background: var(--jp-layout-color2); }
.proml-status { padding: 0 5px; border-radius: 8px; font-size: var(--jp-ui-font-size0); background: var(--jp-layout-color3); }
.proml-status-running { background: #1a7f37; color: white; }
.proml-status-stopped { background: var(--jp-layout-color4); color: white; }
.proml-experiment-detail { margin-top: 8px; }
.proml-decision { font-weight: 600; margin: 6px 0 2px; }
.proml-decision[data-decision='ramp up'] { color: #1a7f37; }
.proml-decision[data-decision='hold'] { color: #9a6700; }
.proml-decision[data-decision='roll back'] { color: #cf222e; }
.proml-reasons { margin: 2px 0; padding-left: 16px; }
.proml-srm { margin: 4px 0; }
.proml-srm-ok { color: var(--jp-ui-font-color2); }
.proml-srm-flagged { color: #cf222e; font-weight: 600; }
.proml-lift-chart { margin-top: 6px; font-size: 10px; }
.proml-lift-chart .proml-lift-label { fill: var(--jp-ui-font-color1); }
.proml-lift-chart .proml-lift-zero { stroke: var(--jp-border-color1); }
.proml-lift-chart line.proml-lift-ci { stroke-width: 2; stroke: var(--jp-ui-font-color2); }
.proml-lift-chart .proml-up { stroke: #1a7f37; fill: #1a7f37; }
.proml-lift-chart .proml-down { stroke: #cf222e; fill: #cf222e; }
.proml-lift-chart .proml-flat { stroke: var(--jp-ui-font-color2); fill: var(--jp-ui-font-color2); }
.proml-experiment { padding: 3px 4px; border-bottom: 1px solid var(--jp-border-color2); }
.proml-experiment-metrics td { white-space: nowrap; }
`,""]),t.d(o,{},{A:p})},314(r){r.exports=function(r){var o=[];return o.toString=function(){return this.map(function(o){var t="",e=void 0!==o[5];return o[4]&&(t+="@supports (".concat(o[4],") {")),o[2]&&(t+="@media ".concat(o[2]," {")),e&&(t+="@layer".concat(o[5].length>0?" ".concat(o[5]):""," {")),t+=r(o),e&&(t+="}"),o[2]&&(t+="}"),o[4]&&(t+="}"),t}).join("")},o.i=function(r,t,e,a,n){"string"==typeof r&&(r=[[null,r,void 0]]);var p={};if(e)for(var l=0;l<this.length;l++){var i=this[l][0];null!=i&&(p[i]=!0)}for(var c=0;c<r.length;c++){var s=[].concat(r[c]);e&&p[s[0]]||(void 0!==n&&(void 0===s[5]||(s[1]="@layer".concat(s[5].length>0?" ".concat(s[5]):""," {").concat(s[1],"}")),s[5]=n),t&&(s[2]&&(s[1]="@media ".concat(s[2]," {").concat(s[1],"}")),s[2]=t),a&&(s[4]?(s[1]="@supports (".concat(s[4],") {").concat(s[1],"}"),s[4]=a):s[4]="".concat(a)),o.push(s))}},o}},601(r){r.exports=function(r){return r[1]}},72(r){var o=[];function t(r){for(var t=-1,e=0;e<o.length;e++)if(o[e].identifier===r){t=e;break}return t}function e(r,e){for(var a={},n=[],p=0;p<r.length;p++){var l=r[p],i=e.base?l[0]+e.base:l[0],c=a[i]||0,s="".concat(i," ").concat(c);a[i]=c+1;var m=t(s),u={css:l[1],media:l[2],sourceMap:l[3],supports:l[4],layer:l[5]};if(-1!==m)o[m].references++,o[m].updater(u);else{var d=function(r,o){var t=o.domAPI(o);return t.update(r),function(o){o?(o.css!==r.css||o.media!==r.media||o.sourceMap!==r.sourceMap||o.supports!==r.supports||o.layer!==r.layer)&&t.update(r=o):t.remove()}}(u,e);e.byIndex=p,o.splice(p,0,{identifier:s,updater:d,references:1})}n.push(s)}return n}r.exports=function(r,a){var n=e(r=r||[],a=a||{});return function(r){r=r||[];for(var p=0;p<n.length;p++){var l=t(n[p]);o[l].references--}for(var i=e(r,a),c=0;c<n.length;c++){var s=t(n[c]);0===o[s].references&&(o[s].updater(),o.splice(s,1))}n=i}}},659(r){var o={};r.exports=function(r,t){var e=function(r){if(void 0===o[r]){var t=document.querySelector(r);if(window.HTMLIFrameElement&&t instanceof window.HTMLIFrameElement)try{t=t.contentDocument.head}catch(r){t=null}o[r]=t}return o[r]}(r);if(!e)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");e.appendChild(t)}},540(r){r.exports=function(r){var o=document.createElement("style");return r.setAttributes(o,r.attributes),r.insert(o,r.options),o}},56(r,o,t){r.exports=function(r){var o=t.nc;o&&r.setAttribute("nonce",o)}},825(r){r.exports=function(r){if("u"<typeof document)return{update:function(){},remove:function(){}};var o=r.insertStyleElement(r);return{update:function(t){var e,a,n;e="",t.supports&&(e+="@supports (".concat(t.supports,") {")),t.media&&(e+="@media ".concat(t.media," {")),(a=void 0!==t.layer)&&(e+="@layer".concat(t.layer.length>0?" ".concat(t.layer):""," {")),e+=t.css,a&&(e+="}"),t.media&&(e+="}"),t.supports&&(e+="}"),(n=t.sourceMap)&&"u">typeof btoa&&(e+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(n))))," */")),r.styleTagTransform(e,o,r.options)},remove:function(){var r;null===(r=o).parentNode||r.parentNode.removeChild(r)}}}},113(r){r.exports=function(r,o){if(o.styleSheet)o.styleSheet.cssText=r;else{for(;o.firstChild;)o.removeChild(o.firstChild);o.appendChild(document.createTextNode(r))}}},959(r,o,t){var e=t(72),a=t.n(e),n=t(825),p=t.n(n),l=t(659),i=t.n(l),c=t(56),s=t.n(c),m=t(540),u=t.n(m),d=t(113),f=t.n(d),h=t(646),v={};v.styleTagTransform=f(),v.setAttributes=s(),v.insert=i().bind(null,"head"),v.domAPI=p(),v.insertStyleElement=u(),a()(h.A,v),h.A&&h.A.locals&&h.A.locals}}]);