/**
 * The one DOM helper the admin page needs: build an element from a tag, properties and children.
 * Properties starting with "on" become listeners; `dataset`, `style` objects are merged;
 * everything else is set as a property when the element has it, else as an attribute.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'dataset' || key === 'style') {
      Object.assign(el[key], value);
    } else if (key in el && !key.includes('-')) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace every child of `el`. */
export function replaceChildren(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

/** A unique id for label/aria wiring. */
let seq = 0;
export function uid(prefix = 'id') {
  seq += 1;
  return `${prefix}-${seq}`;
}
