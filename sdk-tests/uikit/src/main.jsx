// The smallest app that shows the UIKit's three main views for one logged-in user: the
// contact list, the conversation list and the chat window. Everything about the server comes
// from the query string, so one build serves any test server:
//   index.html?appKey=org%23app&rest=http://127.0.0.1:PORT&msync=ws://127.0.0.1:PORT/websocket
//             &user=alice&token=YWMt...
// Clicking a contact opens the chat with that user. Nothing here patches the UIKit or its SDK.
import React from 'react';
import { createRoot } from 'react-dom/client';
import { Provider, ContactList, ConversationList, Chat, rootStore } from 'easemob-chat-uikit';
import 'easemob-chat-uikit/style.css';

const q = new URLSearchParams(window.location.search);
const initConfig = {
  appKey: q.get('appKey') || 'demo#demo',
  userId: q.get('user') || '',
  token: q.get('token') || '',
  restUrl: q.get('rest') || window.location.origin,
  msyncUrl: q.get('msync') || window.location.origin.replace(/^http/, 'ws') + '/websocket',
  // A fixed resource per user, as a real browser keeps one in localStorage.
  deviceId: q.get('device') || undefined,
};

function openChat(info) {
  if (info.type !== 'contact') return;
  rootStore.conversationStore.addConversation({
    chatType: 'singleChat',
    conversationId: info.id,
    name: info.name,
    unreadCount: 0,
    lastMessage: {},
  });
  rootStore.conversationStore.setCurrentCvs({ chatType: 'singleChat', conversationId: info.id, name: info.name });
}

// For the test driver: the store (diagnostics when a step fails), and opening a chat with a
// user by id, the way a click on a contact does (for servers without a contact list yet).
window.__uikit = { rootStore, initConfig, openChat: (id) => openChat({ type: 'contact', id, name: id }) };

function App() {
  const column = { height: '100vh', overflow: 'hidden', borderRight: '1px solid #ddd' };
  return (
    <Provider initConfig={initConfig} features={{ chat: { header: { audioCall: false, videoCall: false } } }}>
      <div style={{ display: 'flex', height: '100vh' }}>
        <div style={{ ...column, width: 260 }} data-testid="contacts">
          <ContactList onItemClick={openChat} />
        </div>
        <div style={{ ...column, width: 320 }} data-testid="conversations">
          <ConversationList />
        </div>
        <div style={{ flex: 1, height: '100vh' }} data-testid="chat">
          <Chat />
        </div>
      </div>
    </Provider>
  );
}

createRoot(document.getElementById('root')).render(<App />);
