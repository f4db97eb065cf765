namespace Sandbox.Agent;

public static class AgentVersion
{
    public const string Text = "0.1.0";
}
