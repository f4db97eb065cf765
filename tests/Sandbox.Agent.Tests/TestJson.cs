using System.Text.Json.Serialization;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace Sandbox.Agent.Tests;

[JsonSerializable(typeof(string))]
internal partial class TestJson : JsonSerializerContext;
