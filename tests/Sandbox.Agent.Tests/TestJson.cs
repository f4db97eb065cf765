using System.Text.Json.Serialization;

namespace Sandbox.Agent.Tests;

[JsonSerializable(typeof(string))]
internal partial class TestJson : JsonSerializerContext;
