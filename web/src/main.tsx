import { render } from 'preact';
import './app.css';
import { App } from './app.tsx';
import { restore, watchVisibility } from './session.ts';

restore();
watchVisibility();
const root = document.getElementById('app');
if (root) render(<App />, root);
