-- Driven by tests/e2e/test_neovim.py: a real headless Neovim lists agentls' code actions on a
-- selection, picks "Ask explain" through vim.lsp.buf.code_action() (vim.ui.select answered by this
-- script), and records what the editor then shows. Works with Neovim 0.7 (Debian 12) and later.
local root = vim.env.AGENTLS_ROOT
local out = vim.env.AGENTLS_OUT
local result = { titles = {} }

local function finish(err)
  result.error = err
  local f = assert(io.open(out, "w"))
  f:write(vim.fn.json_encode(result))
  f:close()
  vim.cmd("qall!")
end

local ok, err = pcall(function()
  vim.cmd("edit " .. vim.fn.fnameescape(root .. "/src/app.py"))
  local ready = false
  local client_id = vim.lsp.start_client({
    name = "agentls",
    cmd = { vim.env.AGENTLS_PYTHON, "-P", "-m", "agentls", "serve" },
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = "ws" } },
    init_options = { trusted = true },
    on_init = function()
      ready = true
    end,
  })
  vim.lsp.buf_attach_client(0, client_id)
  assert(vim.wait(30000, function() return ready end, 20), "the server did not initialize")
  -- the agents are loaded once a command answers
  local client = vim.lsp.get_client_by_id(client_id)
  local listed = client.request_sync("workspace/executeCommand",
    { command = "agentls.agents.list", arguments = { {} } }, 30000, 0)
  assert(listed and listed.result, "agentls.agents.list failed: " .. vim.inspect(listed))

  vim.ui.select = function(items, opts, on_choice)
    local chosen = nil
    for i, item in ipairs(items) do
      local title = opts.format_item and opts.format_item(item) or tostring(item)
      table.insert(result.titles, title)
      if chosen == nil and title:find("Ask explain", 1, true) then
        chosen = i
      end
    end
    on_choice(chosen and items[chosen] or nil, chosen)
  end
  -- Neovim 0.7 does not open documents for servers (showDocument.support = false): agentls then
  -- says where the answer is with window/showMessage. Later versions open it.
  result.messages = {}
  local show_message = vim.lsp.handlers["window/showMessage"]
  vim.lsp.handlers["window/showMessage"] = function(e, params, ctx, config)
    table.insert(result.messages, params.message)
    return show_message(e, params, ctx, config)
  end
  -- select lines 1-2, as a user would before asking
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  vim.lsp.buf.range_code_action(nil, { 1, 0 }, { 2, 0 })
  local function document()
    if vim.api.nvim_buf_get_name(0):match("%.md$") then
      return vim.api.nvim_buf_get_name(0)
    end
    for _, message in ipairs(result.messages) do
      local uri = message:match("(file://%S+%.md)")
      if uri then
        return vim.uri_to_fname(uri)
      end
    end
    return nil
  end
  assert(vim.wait(60000, function() return document() ~= nil end, 50), "no result document")
  result.opened = document()
  result.lines = vim.fn.readfile(result.opened)
end)
finish(not ok and tostring(err) or vim.NIL)
